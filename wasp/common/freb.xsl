<?xml version="1.0" encoding="UTF-8"?>
<!-- wasp's own style sheet for its Failed Request Tracing files (not Microsoft's freb.xsl):
     the request's summary, then every event in time order with its offset from the first, the
     module and notification, and its data. Written next to the traces as IIS does. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:e="http://schemas.microsoft.com/win/2004/08/events/event"
                xmlns:freb="http://schemas.microsoft.com/win/2006/06/iis/freb">
  <xsl:output method="html" encoding="UTF-8"/>
  <xsl:template match="/failedRequest">
    <html><head><title>Failed request trace: <xsl:value-of select="@url"/></title>
    <style>body{font:13px sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;
    padding:2px 6px;vertical-align:top;text-align:left}.w{background:#fff3cd}.e{background:#f8d7da}
    .v{color:#555}</style></head><body>
    <h2><xsl:value-of select="@verb"/>&#160;<xsl:value-of select="@url"/></h2>
    <table>
      <tr><th>status</th><td><xsl:value-of select="@statusCode"/> (trigger
        <xsl:value-of select="@triggerStatusCode"/>, <xsl:value-of select="@failureReason"/>)</td></tr>
      <tr><th>time taken</th><td><xsl:value-of select="@timeTaken"/> ms</td></tr>
      <tr><th>site / pool / process</th><td><xsl:value-of select="@siteId"/> /
        <xsl:value-of select="@appPoolId"/> / <xsl:value-of select="@processId"/></td></tr>
      <tr><th>user</th><td><xsl:value-of select="@userName"/>
        (<xsl:value-of select="@authenticationType"/>)</td></tr>
    </table>
    <h3>Events</h3>
    <table>
      <tr><th>#</th><th>time (UTC)</th><th>event</th><th>module / notification</th><th>data</th></tr>
      <xsl:for-each select="e:Event">
        <xsl:variable name="level" select="e:System/e:Level"/>
        <tr>
          <xsl:attribute name="class">
            <xsl:choose><xsl:when test="$level &lt;= 2">e</xsl:when><xsl:when test="$level = 3">w</xsl:when>
            <xsl:when test="$level = 5">v</xsl:when></xsl:choose>
          </xsl:attribute>
          <td><xsl:value-of select="position()"/></td>
          <td><xsl:value-of select="substring(e:System/e:TimeCreated/@SystemTime, 12, 16)"/></td>
          <td><xsl:value-of select="e:RenderingInfo/e:Opcode"/></td>
          <td><xsl:value-of select="e:EventData/e:Data[@Name='ModuleName']"/>&#160;
            <xsl:value-of select="e:RenderingInfo/freb:Description[@Data='Notification']"/></td>
          <td><xsl:for-each select="e:EventData/e:Data[@Name!='ModuleName' and @Name!='Notification']">
            <xsl:value-of select="@Name"/>=<xsl:value-of select="."/><br/></xsl:for-each></td>
        </tr>
      </xsl:for-each>
    </table>
    </body></html>
  </xsl:template>
</xsl:stylesheet>
