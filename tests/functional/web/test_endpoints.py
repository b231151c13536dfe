"""The list endpoints of cli.md §3 against a running launcher with nodes."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime

from nodepool.launcher.launcher import Launcher
from tests.functional.launcher.helpers import fake_provider, wait_for
from tests.functional.web.helpers import get

NODE_KEYS = ["id", "provider", "label", "server_id", "public_ipv4", "ipv6",
             "state", "age", "locked", "pool", "hostname", "private_ipv4",
             "AZ", "username", "connection_port", "launcher",
             "allocated_to", "hold_job", "comment", "user_data",
             "driver_data"]
NODE_HEADERS = ["ID", "Provider", "Label", "Server ID", "Public IPv4",
                "IPv6", "State", "Age", "Locked", "Pool", "Hostname",
                "Private IPv4", "AZ", "Username", "Port", "Launcher",
                "Allocated To", "Hold Job", "Comment", "User Data",
                "Driver Data"]
REQUEST_KEYS = ["id", "relative_priority", "state", "requestor",
                "node_types", "nodes", "declined_by", "event_id"]
REQUEST_HEADERS = ["Request ID", "Priority", "State", "Requestor",
                   "Node Types", "Nodes", "Declined By", "Event ID"]
IMAGE_KEYS = ["id", "upload_id", "provider", "image", "external_name",
              "external_id", "state", "age"]
IMAGE_HEADERS = ["Build ID", "Upload ID", "Provider", "Image",
                 "Provider Image Name", "Provider Image ID", "State", "Age"]
JSON = "application/json"


def headers_of(text: str) -> list[str]:
    """Column headers of a PrettyTable text table."""
    lines = text.splitlines()
    assert lines[0].startswith("+-") and lines[2].startswith("+-"), text
    return [cell.strip() for cell in lines[1].strip("|").split("|")]


def rows_of(text: str) -> list[list[str]]:
    lines = text.splitlines()[3:-1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_node_list_json_has_the_cli_keys(site):
    r = get(f"{site.url}/node-list", accept=JSON)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json"
    rows = r.json()
    assert [row["id"] for row in rows] == sorted(site.nodes)
    for row in rows:
        assert list(row) == NODE_KEYS
        assert row["provider"] == "fake-provider"
        assert row["state"] == "ready"
        assert row["pool"] == "main"
        assert row["allocated_to"] == site.request_id
        assert row["server_id"].startswith("fake-")
        assert row["connection_port"] == 22
        assert row["locked"] == "unlocked"
        assert len(row["age"].split(":")) == 4
    assert sorted(row["label"][0] for row in rows) == ["large", "small"]


def test_node_list_text_is_the_cli_detail_table(site):
    r = get(f"{site.url}/node-list")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert headers_of(r.text) == NODE_HEADERS
    rows = rows_of(r.text)
    assert [row[0] for row in rows] == sorted(site.nodes)
    assert {row[6] for row in rows} == {"ready"}


def test_node_list_by_node_id(site):
    wanted = site.nodes[1]
    rows = get(f"{site.url}/node-list?node_id={wanted}", accept=JSON).json()
    assert [row["id"] for row in rows] == [wanted]
    assert rows_of(get(f"{site.url}/node-list?node_id={wanted}").text)[0][0] \
        == wanted
    assert get(f"{site.url}/node-list?node_id=9999999999",
               accept=JSON).json() == []


def test_fields_selects_text_columns_by_json_key(site):
    full = {row[0]: row for row in rows_of(get(f"{site.url}/node-list").text)}
    r = get(f"{site.url}/node-list?fields=state,id,label")
    # column order is the table's, not the query's
    assert headers_of(r.text) == ["ID", "Label", "State"]
    assert rows_of(r.text) == [[node_id, full[node_id][2], "ready"]
                               for node_id in sorted(site.nodes)]
    # ignored for JSON
    rows = get(f"{site.url}/node-list?fields=id", accept=JSON).json()
    assert list(rows[0]) == NODE_KEYS


def test_request_list(site):
    rows = get(f"{site.url}/request-list", accept=JSON).json()
    mine = [row for row in rows if row["id"] == site.request_id]
    assert len(mine) == 1
    row = mine[0]
    assert list(row) == REQUEST_KEYS
    assert row["state"] == "fulfilled"
    assert row["node_types"] == ["small", "large"]
    assert row["nodes"] == site.nodes
    assert row["requestor"] == "zuul-sim"
    text = get(f"{site.url}/request-list").text
    assert headers_of(text) == REQUEST_HEADERS
    assert site.request_id in [r[0] for r in rows_of(text)]


def test_label_list_is_the_union_of_pool_labels(site):
    assert get(f"{site.url}/label-list", accept=JSON).json() == [
        {"label": "large"}, {"label": "small"}]
    text = get(f"{site.url}/label-list").text
    assert headers_of(text) == ["Label"]
    assert rows_of(text) == [["large"], ["small"]]


def test_image_list(site):
    rows = get(f"{site.url}/image-list", accept=JSON).json()
    assert [list(row) for row in rows] == [IMAGE_KEYS, IMAGE_KEYS]
    assert [(r["id"], r["upload_id"], r["state"]) for r in rows] == [
        ("0000000001", "0000000001", "ready"),
        ("0000000002", "0000000001", "uploading")]
    assert rows[0]["provider"] == "fake-provider"
    assert rows[0]["image"] == "ubuntu"
    assert rows[0]["external_id"] == "ami-0000000001"
    assert isinstance(rows[0]["age"], int)
    assert abs(rows[0]["age"] - time.time()) < 600
    text = get(f"{site.url}/image-list").text
    assert headers_of(text) == IMAGE_HEADERS
    assert rows_of(text)[0][7].count(":") == 3     # DD:HH:MM:SS as text


def test_accept_header_negotiation(site):
    url = f"{site.url}/label-list"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for accept in (None, "*/*", browser, "text/plain",
                   "application/json;q=0.5, text/plain",
                   "application/json;q=0.5, */*;q=0.5"):
        r = get(url, accept=accept)
        assert r.headers["Content-Type"].startswith("text/plain"), accept
    for accept in (JSON, "application/json, text/plain;q=0.9",
                   "text/html;q=0.1, application/*",
                   "text/*;q=0.2, application/json;q=0.3"):
        r = get(url, accept=accept)
        assert r.headers["Content-Type"] == JSON, accept


def test_caching_headers(site):
    before = int(time.time())
    r = get(f"{site.url}/request-list", accept=JSON)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Cache-Control"] == "public, max-age=1"
    modified = parsedate_to_datetime(r.headers["Last-Modified"]).timestamp()
    expires = parsedate_to_datetime(r.headers["Expires"]).timestamp()
    assert before - 2 <= modified <= time.time()
    assert expires == modified + 1


def test_response_is_cached_per_format_for_its_ttl(site, webapp):
    app = webapp(site.launcher, cache_ttl=30)
    url = f"{app.url}/node-list?node_id={site.nodes[0]}"
    first = get(url, accept=JSON)
    assert first.json()[0]["comment"] is None
    site.env.zuul.set_node(site.nodes[0], comment="changed by the test")
    wait_for(lambda: site.launcher.zk.get_node(
        site.nodes[0], cached=True).comment == "changed by the test",
        what="the launcher's cache to see the change")
    again = get(url, accept=JSON)
    assert again.body == first.body
    assert again.headers["Last-Modified"] == first.headers["Last-Modified"]
    # another format (and the 1 s app) are separate entries: fresh data
    assert "changed by the test" in get(url).text
    wait_for(lambda: get(f"{site.url}/node-list?node_id={site.nodes[0]}",
                         accept=JSON).json()[0]["comment"]
             == "changed by the test", what="the 1 s cache to expire")
    site.env.zuul.set_node(site.nodes[0], comment=None)


def test_if_modified_since(site, webapp):
    app = webapp(site.launcher, cache_ttl=30)
    url = f"{app.url}/label-list"
    first = get(url)
    modified = first.headers["Last-Modified"]
    r = get(url, headers={"If-Modified-Since": modified})
    assert r.status == 304
    assert r.body == b""
    assert r.headers["Last-Modified"] == modified
    assert r.headers["Cache-Control"] == "public, max-age=30"
    stamp = parsedate_to_datetime(modified).timestamp()
    older = formatdate(stamp - 60, usegmt=True)
    r = get(url, headers={"If-Modified-Since": older})
    assert r.status == 200 and r.body == first.body
    assert get(url, headers={"If-Modified-Since": "garbage"}).status == 200
    # the default 1 s app too: a date in the future is never older
    future = formatdate(time.time() + 3600, usegmt=True)
    assert get(f"{site.url}/label-list",
               headers={"If-Modified-Since": future}).status == 304


def test_unknown_paths_are_404_and_only_get_is_allowed(site):
    for path in ("/nope", "/node-list/extra", "/static/../server.py",
                 "/static/missing.js", "/ready/"):
        assert get(f"{site.url}{path}").status == 404, path
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        r = get(f"{site.url}/node-list", method=method)
        assert r.status == 405, method
        assert r.headers["Allow"] == "GET"
    # nothing was changed by those
    assert len(get(f"{site.url}/node-list", accept=JSON).json()) == 2


def test_ready_is_503_until_the_first_main_loop_pass(env, webapp):
    env.write_config([fake_provider()])
    launcher = Launcher(env.config_path, loop_interval=0.2)
    env.launchers.append(launcher)
    app = webapp(launcher)
    r = get(f"{app.url}/ready")
    assert (r.status, r.text) == (503, "Not ready")
    assert get(f"{app.url}/node-list").status == 503
    launcher.start()
    wait_for(lambda: get(f"{app.url}/ready").status == 200,
             what="/ready to answer 200")
    r = get(f"{app.url}/ready")
    assert r.text == "OK"
    assert launcher.ready.is_set()
