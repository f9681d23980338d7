import os

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse


def home(request):
    context = {"items": ["alpha", "beta", "gamma"], "json_url": reverse("json")}
    return render(request, "home.html", context)


def as_json(request):
    return JsonResponse({
        "framework": "django",
        "script_name": request.META.get("SCRIPT_NAME", ""),
        "path": request.path,
        "path_info": request.path_info,
        "query": request.GET.get("q"),
    })


def pid(request):
    return HttpResponse(str(os.getpid()), content_type="text/plain")
