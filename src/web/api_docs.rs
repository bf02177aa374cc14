//! `GET /api/docs`: the OpenAPI document as a page for people, rendered by koinonia itself from
//! the same document `/api/openapi.json` serves (askama, no script, so the pages' CSP holds).
//! Each operation shows its method, path, summary, parameters, request body and responses, with
//! every schema written out field by field.

use askama::Template;
use askama_web::WebTemplate;
use serde_json::{Map, Value};

/// How deep nested schemas are written out before the page only names them.
const MAX_DEPTH: usize = 8;

#[derive(Template, WebTemplate)]
#[template(path = "api_docs.html")]
pub struct ApiDocsPage {
    title: String,
    version: String,
    description: String,
    openapi: String,
    groups: Vec<Group>,
}

/// The operations of one tag.
pub struct Group {
    name: String,
    description: String,
    operations: Vec<Operation>,
}

pub struct Operation {
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    /// `Bearer token or session cookie`, or empty for a public route.
    auth: String,
    params: Vec<Param>,
    body: Option<Body>,
    responses: Vec<Reply>,
}

pub struct Param {
    name: String,
    location: String,
    required: bool,
    kind: String,
    description: String,
}

/// A body of one content type, its schema written out.
pub struct Body {
    content_type: String,
    description: String,
    lines: Vec<Line>,
}

pub struct Reply {
    status: String,
    description: String,
    headers: Vec<(String, String)>,
    bodies: Vec<Body>,
}

impl Reply {
    /// `s2` for 2xx and so on, for the status's colour.
    pub fn status_class(&self) -> String {
        format!("s{}", self.status.chars().next().unwrap_or('0'))
    }
}

/// One field of a schema, indented by `depth`.
pub struct Line {
    depth: usize,
    name: String,
    kind: String,
    required: bool,
    description: String,
}

impl Line {
    /// The indentation class (the page's CSP allows no inline style).
    pub fn indent(&self) -> String {
        format!("d{}", self.depth.min(MAX_DEPTH))
    }
}

/// The page for `document` (the serialized OpenAPI document).
pub fn page(document: &Value) -> ApiDocsPage {
    let empty = Map::new();
    let components = document.pointer("/components").and_then(Value::as_object).unwrap_or(&empty);
    let doc = Doc { components };
    let info = &document["info"];
    let mut groups: Vec<Group> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Group { name: text(&t["name"]), description: text(&t["description"]), operations: Vec::new() })
        .collect();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let tag = op["tags"].get(0).map(text).unwrap_or_else(|| "other".to_owned());
            let operation = doc.operation(method, path, op);
            match groups.iter_mut().find(|g| g.name == tag) {
                Some(g) => g.operations.push(operation),
                None => groups.push(Group { name: tag, description: String::new(), operations: vec![operation] }),
            }
        }
    }
    groups.retain(|g| !g.operations.is_empty());
    ApiDocsPage {
        title: text(&info["title"]),
        version: text(&info["version"]),
        description: text(&info["description"]),
        openapi: text(&document["openapi"]),
        groups,
    }
}

/// A description as HTML: escaped, with `code` spans (the one piece of Markdown they use).
pub fn rich(s: &str) -> String {
    let escaped =
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;");
    let mut out = String::with_capacity(escaped.len());
    for (i, part) in escaped.split('`').enumerate() {
        match i % 2 {
            1 => {
                out.push_str("<code>");
                out.push_str(part);
                out.push_str("</code>");
            }
            _ => out.push_str(part),
        }
    }
    // An unmatched backtick would leave a span open: then the text is shown as it is.
    if escaped.matches('`').count() % 2 == 1 {
        return escaped;
    }
    out
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

struct Doc<'a> {
    components: &'a Map<String, Value>,
}

impl Doc<'_> {
    fn operation(&self, method: &str, path: &str, op: &Value) -> Operation {
        let auth = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|req| req.as_object().into_iter().flat_map(|o| o.keys()))
            .map(|scheme| match scheme.as_str() {
                "bearer" => "Bearer token".to_owned(),
                "session" => "session cookie".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let params = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Param {
                name: text(&p["name"]),
                location: text(&p["in"]),
                required: p["required"].as_bool().unwrap_or(false),
                kind: self.kind(&p["schema"]),
                description: text(&p["description"]),
            })
            .collect();
        let body = op.get("requestBody").map(|rb| {
            let rb = self.resolve(rb, "requestBodies");
            let mut bodies = self.bodies(&rb["content"], &text(&rb["description"]));
            if bodies.is_empty() {
                Body { content_type: String::new(), description: text(&rb["description"]), lines: Vec::new() }
            } else {
                bodies.remove(0)
            }
        });
        let responses = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(status, r)| {
                let r = self.resolve(r, "responses");
                let headers = r["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, h)| (name.clone(), text(&h["description"])))
                    .collect();
                Reply {
                    status: status.clone(),
                    description: text(&r["description"]),
                    headers,
                    bodies: self.bodies(&r["content"], ""),
                }
            })
            .collect();
        Operation {
            anchor: format!("{method}-{}", path.replace(['/', '{', '}', '.'], "-")),
            method: method.to_uppercase(),
            path: path.to_owned(),
            summary: text(&op["summary"]),
            description: text(&op["description"]),
            auth,
            params,
            body,
            responses,
        }
    }

    /// A response or request body that may be a `$ref` into `components/{section}`.
    fn resolve<'v>(&'v self, v: &'v Value, section: &str) -> &'v Value {
        match v["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
            Some(name) => self.components.get(section).and_then(|s| s.get(name)).unwrap_or(v),
            None => v,
        }
    }

    fn bodies(&self, content: &Value, description: &str) -> Vec<Body> {
        content
            .as_object()
            .into_iter()
            .flatten()
            .map(|(content_type, media)| {
                let mut lines = Vec::new();
                if let Some(schema) = media.get("schema") {
                    self.lines(schema, 0, String::new(), false, &mut Vec::new(), &mut lines);
                }
                Body { content_type: content_type.clone(), description: description.to_owned(), lines }
            })
            .collect()
    }

    fn schema(&self, name: &str) -> Option<&Value> {
        self.components.get("schemas").and_then(|s| s.get(name))
    }

    /// A short label: `string (uuid)`, `Message`, `array of Attachment`, `integer or null`,
    /// `"image" | "video"`.
    fn kind(&self, s: &Value) -> String {
        if let Some(name) = ref_name(s) {
            return name.to_owned();
        }
        for (key, joint) in [("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")] {
            if let Some(parts) = s[key].as_array() {
                return parts.iter().map(|p| self.kind(p)).collect::<Vec<_>>().join(joint);
            }
        }
        if let Some(values) = s["enum"].as_array() {
            return values.iter().map(Value::to_string).collect::<Vec<_>>().join(" | ");
        }
        let types: Vec<String> = match &s["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts.iter().map(text).collect(),
            _ => vec!["any".to_owned()],
        };
        types
            .iter()
            .map(|t| match t.as_str() {
                "array" => format!("array of {}", self.kind(&s["items"])),
                "null" => "null".to_owned(),
                other => match s["format"].as_str() {
                    Some(f) => format!("{other} ({f})"),
                    None => other.to_owned(),
                },
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// Writes `s` as a line named `name`, then its fields below it; a schema already being
    /// written out higher up is only named (recursive shapes stay finite).
    fn lines(
        &self,
        s: &Value,
        depth: usize,
        name: String,
        required: bool,
        seen: &mut Vec<String>,
        out: &mut Vec<Line>,
    ) {
        let mut description = text(&s["description"]);
        if let Some(min) = s["minimum"].as_i64() {
            description = format!("{description} (at least {min})").trim().to_owned();
        }
        let target = ref_name(s).and_then(|n| self.schema(n).map(|t| (n, t)));
        if description.is_empty() {
            if let Some((_, t)) = target {
                description = text(&t["description"]);
            }
        }
        out.push(Line { depth, name, kind: self.kind(s), required, description });
        if depth >= MAX_DEPTH {
            return;
        }
        self.fields(s, depth, seen, out);
    }

    /// The fields of `s` (through references, arrays and combinations), one level deeper.
    fn fields(&self, s: &Value, depth: usize, seen: &mut Vec<String>, out: &mut Vec<Line>) {
        if let Some(name) = ref_name(s) {
            if seen.iter().any(|n| n == name) {
                return;
            }
            if let Some(target) = self.schema(name) {
                seen.push(name.to_owned());
                self.fields(target, depth, seen, out);
                seen.pop();
            }
            return;
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for part in s[key].as_array().into_iter().flatten() {
                self.fields(part, depth, seen, out);
            }
        }
        if let Some(items) = s.get("items") {
            self.fields(items, depth, seen, out);
        }
        let required: Vec<&str> = s["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        // Required fields in their declared order (`required` keeps it), then the optional ones.
        let mut fields: Vec<(&String, &Value)> = s["properties"].as_object().into_iter().flatten().collect();
        fields.sort_by_key(|(name, _)| required.iter().position(|r| r == name).unwrap_or(usize::MAX));
        for (field, schema) in fields {
            self.lines(schema, depth + 1, field.clone(), required.contains(&field.as_str()), seen, out);
        }
    }
}

fn ref_name(s: &Value) -> Option<&str> {
    s["$ref"].as_str().and_then(|r| r.rsplit('/').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_escaped_with_code_spans() {
        assert_eq!(rich("a `b<c>` & d"), "a <code>b&lt;c&gt;</code> &amp; d");
        assert_eq!(rich("<script>"), "&lt;script&gt;");
        assert_eq!(rich("one ` alone"), "one ` alone");
    }
}
