"""A service whose module fails to import (a broken deploy of a tcp pool)."""

raise ImportError("broken_service cannot be imported")
