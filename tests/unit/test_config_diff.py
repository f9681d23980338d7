"""changed_pools: which pools a reload must recycle."""

from __future__ import annotations

from wasp.config.diff import added_pools, changed_pools, removed_pools
from wasp.config.load import load_text

BASE = '''
[[pools]]
name = "a"
[[pools]]
name = "b"
[[pools]]
name = "idle"

[[sites]]
name = "one"
id = 1
bindings = ["http/*:8080:"]
[[sites.applications]]
path = "/"
app = "m:app"
pool = "a"
[[sites.applications]]
path = "/api"
pool = "b"
app = "api:app"

[[sites]]
name = "two"
id = 2
bindings = ["http/*:8081:"]
[[sites.applications]]
path = "/"
app = "m:app"
pool = "b"
'''


def changed(new_text: str, old_text: str = BASE) -> set[str]:
    return changed_pools(load_text(old_text), load_text(new_text))


def test_identical_configs_change_nothing():
    assert changed(BASE) == set()


def test_comments_and_layout_change_nothing():
    assert changed(BASE.replace('name = "a"', 'name   =   "a"   # the first')) == set()


def test_pool_setting():
    assert changed(BASE.replace('name = "b"\n', 'name = "b"\nthreads = 4\n', 1)) == {"b"}


def test_pool_nested_setting():
    assert changed(BASE.replace('name = "a"\n', 'name = "a"\nprocess_model.idle_timeout = "5m"\n', 1)) == {"a"}


def test_pool_defaults_change_every_pool_they_reach():
    assert changed('[pool_defaults]\nthreads = 2\n' + BASE) == {"a", "b", "idle"}


def test_pool_defaults_that_change_nothing():
    assert changed('[pool_defaults]\nthreads = 16\n' + BASE) == set()


def test_application_field():
    assert changed(BASE.replace('app = "api:app"', 'app = "api:make()"')) == {"b"}


def test_application_moved_between_pools():
    assert changed(BASE.replace('path = "/api"\npool = "b"', 'path = "/api"\npool = "a"')) == {"a", "b"}


def test_application_added():
    assert changed(BASE + '[[sites.applications]]\npath = "/x"\npool = "idle"\napp = "m:app"\n') == {"idle"}


def test_site_bindings_change_the_pools_of_that_site():
    assert changed(BASE.replace('bindings = ["http/*:8081:"]', 'bindings = ["http/*:9000:"]')) == {"b"}
    assert changed(BASE.replace('bindings = ["http/*:8080:"]', 'bindings = ["http/*:9000:"]')) == {"a", "b"}


def test_binding_spelling_that_means_the_same_changes_nothing():
    assert changed(BASE.replace('"http/*:8081:"', '"HTTP/*:8081:"')) == set()


def test_server_settings_change_no_pool():
    assert changed('[limits]\nmax_url = 100\n' + BASE) == set()


def test_added_and_removed_pools_are_not_changed_pools():
    new = BASE.replace('name = "idle"', 'name = "fresh"')
    assert changed(new) == set()
    assert added_pools(load_text(BASE), load_text(new)) == {"fresh"}
    assert removed_pools(load_text(BASE), load_text(new)) == {"idle"}


def test_server_level_section_changes_every_pool_with_an_application():
    assert changed("[default_document]\nfiles = [\"home.html\"]\n" + BASE) == {"a", "b"}


def test_site_level_section_changes_the_pools_of_that_site():
    two = BASE.replace('bindings = ["http/*:8081:"]\n', 'bindings = ["http/*:8081:"]\n'
                       '[sites.modules]\nremove = ["http_cache"]\n')
    assert changed(two) == {"b"}
