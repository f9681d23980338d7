from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("json", views.as_json, name="json"),
    path("pid", views.pid, name="pid"),
]
