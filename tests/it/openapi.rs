//! The OpenAPI document (`GET /api/openapi.json`) and its page (`GET /api/docs`): every route of
//! the API is in it with its methods, every reference resolves, and the shapes it documents are
//! exactly the ones the API answers (field names, required fields, nullability).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::support::{fixture, received_event, TestApp};

/// Every route of the HTTP API, with its method. A route added to the API is added here.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/auth/login"),
    ("post", "/api/auth/logout"),
    ("post", "/api/auth/password"),
    ("get", "/api/conversations"),
    ("post", "/api/conversations"),
    ("get", "/api/conversations/{id}"),
    ("patch", "/api/conversations/{id}/read"),
    ("post", "/api/conversations/{id}/reply"),
    ("post", "/api/conversations/{id}/reply-with-media"),
    ("patch", "/api/members/{id}"),
    ("delete", "/api/members/{id}"),
    ("get", "/api/members/{id}/export"),
    ("get", "/api/leaders"),
    ("post", "/api/leaders"),
    ("delete", "/api/leaders/{id}"),
    ("post", "/api/leaders/{id}/password"),
    ("get", "/api/media"),
    ("post", "/api/media/export"),
    ("get", "/api/media/{id}"),
    ("get", "/api/media/{id}/preview/{size}"),
    ("patch", "/api/attachments/{id}"),
    ("get", "/api/audit"),
    ("get", "/api/push/key"),
    ("post", "/api/push/subscriptions"),
    ("delete", "/api/push/subscriptions"),
    ("get", "/api/notifications/settings"),
    ("patch", "/api/notifications/settings"),
    ("post", "/api/webhooks/telnyx/mms"),
    ("post", "/api/messages/webhooks/telnyx/mms"),
    ("post", "/api/webhooks/telnyx/status"),
    ("post", "/api/messages/webhooks/telnyx/status"),
    ("get", "/api/openapi.json"),
    ("get", "/api/docs"),
    ("get", "/m/{token}"),
    ("get", "/healthz"),
    ("get", "/metrics"),
];

/// Routes that take no leader session (Telnyx signs its webhooks; a member link is its own
/// credential).
const PUBLIC: &[&str] = &[
    "/api/auth/login",
    "/api/webhooks/telnyx/mms",
    "/api/messages/webhooks/telnyx/mms",
    "/api/webhooks/telnyx/status",
    "/api/messages/webhooks/telnyx/status",
    "/api/openapi.json",
    "/api/docs",
    "/m/{token}",
    "/healthz",
    "/metrics",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn document(app: &TestApp) -> Value {
    let res = app.http.get(app.url("/api/openapi.json")).send().await.expect("GET /api/openapi.json");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.expect("the document is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_holds_every_route_with_its_methods() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite, crate::support::Store::Local).await else { return };
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "OpenAPI 3.x, got {version}");
    assert_eq!(doc["info"]["title"], "koinonia");

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(missing.is_empty(), "routes missing from the document: {missing:?}");
    assert!(unknown.is_empty(), "documented routes this test does not know (add them to ROUTES): {unknown:?}");

    // Code generators need one operationId per operation.
    let mut ids = BTreeSet::new();
    for (method, path) in ROUTES {
        let id = doc["paths"][path][method]["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty() && ids.insert(id.clone()), "{method} {path}: operationId {id:?} missing or repeated");
    }

    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        let name = format!("{} {path}", method.to_uppercase());
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{name} has a summary");
        let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
        assert!(statuses.iter().any(|s| s.starts_with('2') || s.starts_with('3')), "{name}: a success");
        // Each `{param}` of the path is a documented path parameter.
        for param in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
            let declared =
                op["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == param && p["in"] == "path");
            assert!(declared, "{name}: path parameter {param}");
        }
        if PUBLIC.contains(path) {
            assert!(op.get("security").is_none(), "{name} is public");
        } else {
            let schemes: BTreeSet<&str> = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} names its security"))
                .iter()
                .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().map(String::as_str)))
                .collect();
            assert_eq!(schemes, BTreeSet::from(["bearer", "session"]), "{name}");
            assert!(statuses.iter().any(|s| *s == "401"), "{name} documents 401");
            // Served: without credentials the route itself answers 401 (an unknown path would be
            // the fallback's 404, a wrong method 405).
            let url = app.url(&path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
            let res =
                app.http.request(method.to_uppercase().parse().expect("method"), url).send().await.expect("request");
            assert_eq!(res.status(), 401, "{name} is served and asks for a session");
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["type"], "apiKey");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "koinonia_session");

    // Every reference points at something.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "references are used: {}", refs.len());
    for r in refs {
        let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
        assert!(target.is_some(), "dangling reference {r}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_shows_every_operation() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite, crate::support::Store::Local).await else { return };
    let res = app.http.get(app.url("/api/docs")).send().await.expect("GET /api/docs");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let csp = res.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = res.text().await.expect("html");
    assert!(!html.contains("<script"), "no script on the page");
    for (method, path) in ROUTES {
        let heading =
            format!("<span class=\"method m-{m}\">{m}</span> <code>{path}</code></h3>", m = method.to_uppercase());
        assert!(html.contains(&heading), "{method} {path} has its section");
    }
    // Schemas are written out field by field, through references and arrays.
    for field in
        ["<code>mimeType</code>", "<code>deliveryStatus</code>", "<code>nextCursor</code>", "<code>previews</code>"]
    {
        assert!(html.contains(field), "{field} is shown");
    }
    assert!(html.contains("Bearer token or session cookie"));
    assert!(html.contains("multipart/form-data"));
    assert!(html.contains("retry-after"));
}

async fn answers_are_as_documented(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    app.admin(church, "admin@grace.test").await;
    let doc = document(&app).await;
    let check = |method: &str, path: &str, status: u16, body: &Value| {
        let schema = response_schema(&doc, method, path, status);
        let mut errors = Vec::new();
        conforms(&doc, &schema, body, "$", &mut errors);
        assert!(errors.is_empty(), "{method} {path} → {status} differs from the document: {errors:#?}\n{body:#}");
    };

    let res = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "admin@grace.test", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200);
    let login: Value = res.json().await.expect("json");
    check("post", "/api/auth/login", 200, &login);
    let token = login["data"]["token"].as_str().expect("token").to_owned();

    let media = serve_fixture(&app, &fixture("photo.jpg")).await;
    let event = received_event("evt-1", MEMBER_NUMBER, CHURCH_NUMBER, "A photo", vec![media]);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    check("get", "/api/conversations", 200, &list);
    let conv = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();
    let thread = settled_thread(&app, &token, &conv).await;
    let attachment = &thread["data"]["messages"][0]["media"][0];
    assert_eq!(attachment["status"], "stored");
    // Null until the preview job has run, then {small, large}: whichever it is now, it is checked.
    assert!(attachment["previews"].is_null() || attachment["previews"]["small"].is_string(), "{attachment}");
    check("get", "/api/conversations/{id}", 200, &thread);
    let attachment = attachment["id"].as_str().expect("attachment").to_owned();

    let send = |method: &'static str, path: String, body: Option<Value>| {
        let mut req = app.http.request(method.parse().expect("method"), app.url(&path)).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) =
        send("POST", format!("/api/conversations/{conv}/reply"), Some(json!({"content": "Thanks!"}))).await;
    assert_eq!(status, 201);
    check("post", "/api/conversations/{id}/reply", 201, &body);
    let (status, body) = send("PATCH", format!("/api/conversations/{conv}/read"), None).await;
    assert_eq!(status, 200);
    check("patch", "/api/conversations/{id}/read", 200, &body);
    let (status, body) = send("PATCH", format!("/api/members/{member}"), Some(json!({"firstName": "Ruth"}))).await;
    assert_eq!(status, 200);
    check("patch", "/api/members/{id}", 200, &body);
    let (status, body) = send("PATCH", format!("/api/attachments/{attachment}"), Some(json!({"keep": true}))).await;
    assert_eq!(status, 200);
    check("patch", "/api/attachments/{id}", 200, &body);
    let (status, body) =
        send("POST", "/api/conversations".into(), Some(json!({"phone": "+13125550999", "content": "Hi"}))).await;
    assert_eq!(status, 201);
    check("post", "/api/conversations", 201, &body);
    let (status, body) =
        send("POST", "/api/leaders".into(), Some(json!({"email": "b@grace.test", "password": "another long one"})))
            .await;
    assert_eq!(status, 201);
    check("post", "/api/leaders", 201, &body);
    for path in ["/api/media", "/api/audit", "/api/leaders"] {
        let body = app.get_json(&token, path).await;
        check("get", path, 200, &body);
    }
    let (status, body) = send("GET", format!("/api/conversations/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, 404);
    check("get", "/api/conversations/{id}", 404, &body);
    let (status, body) = send("GET", "/api/conversations?limit=0".into(), None).await;
    assert_eq!(status, 400);
    check("get", "/api/conversations", 400, &body);
    let health: Value = app.http.get(app.url("/healthz")).send().await.expect("healthz").json().await.expect("json");
    check("get", "/healthz", 200, &health);
}

crate::matrix!(answers_match_the_document, databases, answers_are_as_documented);

/// The JSON schema the document gives for `status` of `method path`.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let mut response = &doc["paths"][path][method]["responses"][status.to_string()];
    if let Some(r) = response["$ref"].as_str() {
        response = doc.pointer(r.trim_start_matches('#')).expect("response reference");
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents a JSON body for {status}");
    schema.clone()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, doc.pointer(r.trim_start_matches('#')).expect("schema reference")),
        None => schema,
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` against `schema` strictly: an object has exactly the documented properties,
/// every one of them documented as required (the API always writes every field, null or not),
/// and a null is only where the document allows it.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let fits = variants.iter().any(|s| {
            let mut e = Vec::new();
            conforms(doc, s, value, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: {value} fits none of the variants"));
        }
        return;
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let actual = type_of(value);
    let fits = types.is_empty() || types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
    if !fits {
        errors.push(format!("{at}: a {actual}, documented as {types:?}"));
        return;
    }
    // Objects, including those composed with allOf (a flattened struct).
    let mut properties = serde_json::Map::new();
    let mut required = BTreeSet::new();
    let mut parts = vec![schema];
    parts.extend(schema["allOf"].as_array().into_iter().flatten().map(|s| resolve(doc, s)));
    for part in parts {
        if let Some(p) = part["properties"].as_object() {
            properties.extend(p.clone());
        }
        required.extend(part["required"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
    }
    if let (false, Value::Object(fields)) = (properties.is_empty(), value) {
        for key in fields.keys().filter(|k| !properties.contains_key(*k)) {
            errors.push(format!("{at}.{key}: answered but not documented"));
        }
        for (key, s) in &properties {
            if !required.contains(key) {
                errors.push(format!("{at}.{key}: always answered, but not documented as required"));
            }
            match fields.get(key) {
                Some(v) => conforms(doc, s, v, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}.{key}: documented but not answered")),
            }
        }
    }
    if let (Some(items), Value::Array(elements)) = (schema.get("items"), value) {
        for (i, v) in elements.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// A NUL character cannot be stored in PostgreSQL text: a request carrying one in its query or
/// JSON body is refused with 400 on both databases, never failed with 500 on one of them.
async fn nul_characters_are_refused(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.admin(church, "admin@grace.test").await;
    let gets =
        ["/api/conversations?q=%00", "/api/conversations?q=a%00b", "/api/media?cursor=%00", "/api/audit?cursor=%00"];
    for path in gets {
        let res = app.get(&token, path).await;
        assert_eq!(res.status(), 400, "GET {path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body, json!({"success": false, "error": "text must not contain NUL characters"}), "GET {path}");
    }
    let posts = [
        ("/api/auth/login", json!({"email": "a\u{0}b@grace.test", "password": "correct horse battery"})),
        ("/api/leaders", json!({"email": "new\u{0}@grace.test", "password": "correct horse battery"})),
        ("/api/leaders", json!({"email": "new@grace.test", "password": "correct horse\u{0}battery"})),
        ("/api/conversations", json!({"phone": "+1312555\u{0}0001", "content": "hi"})),
        ("/api/conversations", json!({"phone": "+13125550001", "content": "hi\u{0}"})),
    ];
    for (path, body) in posts {
        let res = app.http.post(app.url(path)).bearer_auth(&token).json(&body).send().await.expect("post");
        assert_eq!(res.status(), 400, "POST {path} {body}");
    }
}

crate::matrix!(nul_characters, databases, nul_characters_are_refused);
