"""Seeds a fresh koinonia for scripts/fuzz-api and writes schemathesis's configuration.

Run by scripts/fuzz-api with the venv's Python (it uses `requests`, a dependency of schemathesis).
Through the API and the sandbox phone only, it makes: members who texted (one with a photo, one
to be erased), an outbound file too large for MMS (so a member link /m/{token} exists), spare
sessions for the operations that end a session, and a leader that may be removed. The real ids
go into schemathesis.toml as dictionaries, so that operations taking an id reach real rows as
well as random ids.

Arguments: BASE_URL ADMIN_EMAIL PASSWORD DATA_DIR CONFIG_PATH SEED MAX_EXAMPLES FIXTURE
"""

import sqlite3
import sys
import time

import requests

base, email, password, data_dir, config_path, seed, max_examples, fixture = sys.argv[1:9]
CHURCH_NUMBER = "+15551230000"
MEMBER, ERASABLE = "+13125550101", "+13125550102"


def fail(what, res=None):
    detail = f": {res.status_code} {res.text[:300]}" if res is not None else ""
    sys.exit(f"fuzz-api seed: {what}{detail}")


def login(address):
    res = requests.post(f"{base}/api/auth/login", json={"email": address, "password": password}, timeout=30)
    if res.status_code != 200:
        fail(f"login of {address}", res)
    return res.json()["data"]["token"]


def api(method, path, token, **kw):
    res = requests.request(method, f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)
    if res.status_code >= 300:
        fail(f"{method} {path}", res)
    return res.json()["data"]


def member_texts(phone, text, file=None):
    """The sandbox phone sends: always multipart, as the phone page does."""
    fields = {"phone": (None, phone), "church": (None, CHURCH_NUMBER), "text": (None, text)}
    if file:
        fields["files"] = file
    res = requests.post(f"{base}/sandbox/send", files=fields, timeout=30)
    if res.status_code != 201:
        fail(f"the sandbox phone {phone} sending", res)


def settled(token, conversation):
    """The thread once none of its files is still pending (the fetch job runs in the server)."""
    for _ in range(300):
        thread = api("GET", f"/api/conversations/{conversation}", token)
        media = [a for m in thread["messages"] for a in m["media"]]
        if all(a["status"] != "pending" for a in media):
            return thread
        time.sleep(0.1)
    fail(f"files of conversation {conversation} still pending")


admin = login(email)

with open(fixture, "rb") as f:
    photo = f.read()
member_texts(MEMBER, "Hello from the fuzzer's member", ("photo.png", photo, "image/png"))
member_texts(ERASABLE, "Please forget me")
conversations = {c["member"]["phone"][-4:]: c for c in api("GET", "/api/conversations", admin)["conversations"]}
conversation = conversations[MEMBER[-4:]]
erasable = conversations[ERASABLE[-4:]]["member"]["id"]
thread = settled(admin, conversation["id"])
stored = [a for m in thread["messages"] for a in m["media"] if a["status"] == "stored"]
if not stored:
    fail("the member's photo was not stored")
message = thread["messages"][0]["id"]

# A reply with a file larger than MMS_MAX_ATTACHMENT_BYTES goes out as a link: /m/{token}
# (a photo's preview by MMS is not wanted here: "largeImage": "link").
reply = api(
    "POST",
    f"/api/conversations/{conversation['id']}/reply-with-media",
    admin,
    data={"content": "Here is the file", "largeImage": "link"},
    files={"file": ("photo.png", photo, "image/png")},
)
if reply["deliveryStatus"] != "link_sent":
    fail(f"the reply with a file went as {reply['deliveryStatus']}, not as a link")
# The token is a credential: the API never shows it, so it is read where the server keeps it.
with sqlite3.connect(f"{data_dir}/koinonia.db") as db:
    row = db.execute("SELECT link_token FROM attachments WHERE link_token IS NOT NULL").fetchone()
if not row:
    fail("no member link was made")
link_token = row[0]

# Leaders: spare sessions for logout and password change, and one leader that may be removed.
spare_email, removable_email = "spare@fuzz.test", "removable@fuzz.test"
api("POST", "/api/leaders", admin, json={"email": spare_email, "password": password})
removable = api("POST", "/api/leaders", admin, json={"email": removable_email, "password": password})["id"]
logout_token, password_token = login(spare_email), login(spare_email)

config = f"""# Written by scripts/fuzz-api-seed.py for one run of scripts/fuzz-api.
seed = {seed}
max-redirects = 0
headers = {{ Authorization = "Bearer {admin}" }}

[generation]
max-examples = {max_examples}

[phases.stateful]
enabled = false

[dictionaries.conversation]
values = ["{conversation['id']}"]
[dictionaries.member]
values = ["{conversation['member']['id']}"]
[dictionaries.erasable]
values = ["{erasable}"]
[dictionaries.attachment]
values = ["{stored[0]['id']}"]
[dictionaries.message]
values = ["{message}"]
[dictionaries.token]
values = ["{link_token}"]
[dictionaries.leader]
values = ["{removable}"]

[[operations]]
include-path-regex = "^/api/conversations/[{{]id[}}]"
parameters = {{ "path.id" = {{ dictionary = "conversation", probability = 0.6 }}, "query.before" = {{ dictionary = "message", probability = 0.3 }} }}

[[operations]]
include-path = "/api/members/{{id}}"
include-method = "PATCH"
parameters = {{ "path.id" = {{ dictionary = "member", probability = 0.6 }} }}

[[operations]]
include-path = "/api/members/{{id}}"
include-method = "DELETE"
parameters = {{ "path.id" = {{ dictionary = "erasable", probability = 0.5 }} }}

[[operations]]
include-path-regex = "^/api/(media|attachments)/[{{]id[}}]$"
parameters = {{ "path.id" = {{ dictionary = "attachment", probability = 0.6 }} }}

[[operations]]
include-path = "/api/media"
parameters = {{ "query.conversationId" = {{ dictionary = "conversation", probability = 0.4 }}, "query.memberId" = {{ dictionary = "member", probability = 0.4 }} }}

[[operations]]
include-path = "/m/{{token}}"
parameters = {{ "path.token" = {{ dictionary = "token", probability = 0.6 }} }}

[[operations]]
include-path = "/api/leaders/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "leader", probability = 0.5 }} }}

# Logout and password change end the session that calls them: each runs with a spare session of
# its own, so the fuzzer's session lives through the whole run.
[[operations]]
include-path = "/api/auth/logout"
headers = {{ Authorization = "Bearer {logout_token}" }}

[[operations]]
include-path = "/api/auth/password"
headers = {{ Authorization = "Bearer {password_token}" }}
"""
with open(config_path, "w") as f:
    f.write(config)
print(f"fuzz-api seed: conversation {conversation['id']}, attachment {stored[0]['id']}, member link made")
