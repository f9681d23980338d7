"""docs/django.md's example project: a Django site whose static files wasp serves.

The static-files block below is quoted in docs/django.md; tests/integration/test_server_django.py
checks that the doc and this file agree.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent  # the folder of manage.py (and wasp.toml)

SECRET_KEY = "docs-example-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES = {}
USE_TZ = True
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "DIRS": [BASE_DIR / "mysite" / "templates"]}]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

# --- static files (docs/django.md) ---
INSTALLED_APPS = ["django.contrib.staticfiles"]
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "assets"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# --- end ---
