//! openapi.yaml as a checker of real answers: every response the test API sends is looked up by method, path
//! template and status, and its body checked against the documented schema. A status the operation does not
//! document, a JSON body where none is documented, a missing required field, a wrong type, a value outside
//! its constraints or a field the schema does not name (a renamed one) is a violation.
//!
//! Generic on purpose: a route is checked as soon as openapi.yaml documents it, whoever adds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Value, json};

const SPEC: &str = include_str!("../../openapi.yaml");

/// What the check sees of a body: JSON is read whole; any other body only as empty or not (downloads stream).
pub enum Body<'a> {
    Bytes(&'a [u8]),
    Opaque { empty: bool },
}

pub struct Contract {
    spec: Value,
    /// Compiled schemas by JSON pointer into the spec.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// The contract of this repository's openapi.yaml, parsed once per test process.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract::new(serde_norway::from_str(SPEC).expect("openapi.yaml is valid YAML")))
}

impl Contract {
    pub fn new(spec: Value) -> Self {
        Self { spec, validators: Mutex::new(HashMap::new()) }
    }

    /// Checks one answer; `Err` says what openapi.yaml and the answer disagree on.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let error_schema = "#/components/schemas/Error";
        let Some(template) = self.template(path) else {
            // Unrouted paths answer 404 route_not_found, as the spec's description says.
            return self.check_plain_error(error_schema, content_type, body);
        };
        let operation_pointer = format!("#/paths/{}/{method}", escape(&template));
        let Some(operation) = self.resolve(&operation_pointer) else {
            if status == 405 {
                return self.check_plain_error(error_schema, content_type, body);
            }
            return Err(format!("{method} {template} is not documented, yet it answered {status}"));
        };
        let responses = &operation["responses"];
        let key = [status.to_string(), format!("{}XX", status / 100), "default".into()]
            .into_iter()
            .find(|k| responses.get(k).is_some())
            .ok_or_else(|| format!("{method} {template} answered {status}, which its responses do not list"))?;
        let (response_pointer, response) = self.follow(&format!("{operation_pointer}/responses/{key}"));
        let content = response.get("content").and_then(Value::as_object);
        let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let empty = match body {
            Body::Bytes(bytes) => bytes.is_empty(),
            Body::Opaque { empty } => empty,
        };
        // HEAD answers never carry their body on the wire, whatever the handler built.
        if empty || method == "head" {
            let empty_is_fine = method == "head";
            let wants_json = content.is_some_and(|c| c.contains_key("application/json"));
            return match wants_json && !empty_is_fine {
                true => Err(format!("{method} {template} {status}: no body, but openapi.yaml documents JSON")),
                false => Ok(()),
            };
        }
        let media = media.unwrap_or_default();
        let Some(content) = content else {
            return Err(format!("{method} {template} {status}: a {media} body, but openapi.yaml documents none"));
        };
        let documented = content.keys().find(|k| media_matches(k, &media)).ok_or_else(|| {
            let keys: Vec<_> = content.keys().collect();
            format!("{method} {template} {status}: a {media} body, but openapi.yaml documents {keys:?}")
        })?;
        let Body::Bytes(bytes) = body else { return Ok(()) };
        if !is_json(&media) || content[documented].get("schema").is_none() {
            return Ok(());
        }
        let instance: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("{method} {template} {status}: the body is not JSON ({e})"))?;
        let schema = format!("{response_pointer}/content/{}/schema", escape(documented));
        self.validate(&schema, &instance).map_err(|e| format!("{method} {template} {status}: {e}; body: {instance}"))
    }

    /// A JSON body outside any documented operation must still be an `Error`.
    fn check_plain_error(&self, schema: &str, content_type: Option<&str>, body: Body) -> Result<(), String> {
        match (content_type, body) {
            (Some(ct), Body::Bytes(bytes)) if is_json(ct) && !bytes.is_empty() => {
                let instance: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
                self.validate(schema, &instance).map_err(|e| format!("{e}; body: {instance}"))
            }
            _ => Ok(()),
        }
    }

    /// The documented path template `path` falls under; literal segments win over `{parameters}`.
    fn template(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.spec["paths"].as_object()?;
        let matching = paths.keys().filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()));
            fits.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), template))
        });
        matching.max_by_key(|(literals, _)| *literals).map(|(_, t)| t.clone())
    }

    fn resolve(&self, pointer: &str) -> Option<&Value> {
        self.spec.pointer(pointer.strip_prefix('#')?)
    }

    /// The value at `pointer`, following `$ref`s; returns where it ended up too.
    fn follow(&self, pointer: &str) -> (String, &Value) {
        let mut pointer = pointer.to_string();
        loop {
            let value = self.resolve(&pointer).unwrap_or_else(|| panic!("openapi.yaml has nothing at {pointer}"));
            match value.get("$ref").and_then(Value::as_str) {
                Some(target) => pointer = target.to_string(),
                None => return (pointer, value),
            }
        }
    }

    /// JSON Schema validation (formats included), then the check for fields the schema does not name.
    pub fn validate(&self, schema_pointer: &str, instance: &Value) -> Result<(), String> {
        let validator = self.validator(schema_pointer)?;
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let mut unknown = Vec::new();
        self.unknown_fields(&json!({ "$ref": schema_pointer }), instance, "", &mut unknown);
        match unknown.is_empty() {
            true => Ok(()),
            false => Err(format!("fields openapi.yaml does not name: {}", unknown.join(", "))),
        }
    }

    fn validator(&self, pointer: &str) -> Result<Arc<Validator>, String> {
        let mut validators = self.validators.lock().expect("validators");
        if let Some(validator) = validators.get(pointer) {
            return Ok(validator.clone());
        }
        // The whole spec is the root document, so every `#/components/...` reference resolves as it is written.
        let mut root = self.spec.clone();
        // A `$ref` is a URI: path templates' braces are percent-encoded in it.
        root["$ref"] = json!(pointer.replace('{', "%7B").replace('}', "%7D"));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("openapi.yaml's schema at {pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        validators.insert(pointer.to_string(), validator.clone());
        Ok(validator)
    }

    /// Object fields that no `properties` of the schema (or of its `allOf` parts) names, where the schema does
    /// not leave the object open (`additionalProperties`, or no `properties` at all, as for `metadata`).
    fn unknown_fields(&self, schema: &Value, instance: &Value, at: &str, out: &mut Vec<String>) {
        let parts = self.parts(schema);
        match instance {
            Value::Object(fields) => {
                let open = parts.iter().any(|p| p.get("additionalProperties").is_some_and(|a| a != false))
                    || !parts.iter().any(|p| p.get("properties").is_some())
                    || parts.iter().any(|p| p.get("oneOf").is_some() || p.get("anyOf").is_some());
                for (name, value) in fields {
                    let named: Vec<&Value> = parts.iter().filter_map(|p| p.get("properties")?.get(name)).collect();
                    if named.is_empty() && !open {
                        out.push(format!("{at}/{name}"));
                    }
                    for subschema in named {
                        self.unknown_fields(subschema, value, &format!("{at}/{name}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let by_position = parts.iter().find_map(|p| p.get("prefixItems")?.get(index));
                    if let Some(subschema) = by_position.or_else(|| parts.iter().find_map(|p| p.get("items"))) {
                        self.unknown_fields(subschema, item, &format!("{at}/{index}"), out);
                    }
                }
            }
            _ => {}
        }
    }

    /// The schema and its `allOf` parts, every `$ref` followed.
    fn parts<'a>(&'a self, schema: &'a Value) -> Vec<&'a Value> {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(target) => self.follow(target).1,
            None => schema,
        };
        let mut parts = vec![schema];
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            parts.extend(self.parts(part));
        }
        parts
    }
}

/// JSON pointer escaping of one key (`/v1/uploads` -> `~1v1~1uploads`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn is_json(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or("").trim();
    media == "application/json" || media.ends_with("+json")
}

fn media_matches(documented: &str, media: &str) -> bool {
    documented == "*/*"
        || documented == media
        || documented.strip_suffix("/*").is_some_and(|kind| media.split('/').next() == Some(kind))
}

/// Violations seen by one [`crate::TestApp`]; it fails the test with them when dropped.
pub type Violations = Arc<Mutex<Vec<String>>>;

/// The router with every answer checked against openapi.yaml on its way out; violations go to `violations`.
pub fn checked(router: axum::Router, violations: Violations) -> axum::Router {
    router.layer(axum::middleware::from_fn(move |request, next| check_answer(violations.clone(), request, next)))
}

/// JSON answers are small (a page of 100 uploads is the largest); more than this is itself a finding.
const MAX_JSON_ANSWER: usize = 4 * 1024 * 1024;

async fn check_answer(
    violations: Violations,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body::Body as _;
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    // A CORS preflight is answered by the CORS layer for every route; OpenAPI does not describe it.
    if request.headers().contains_key(axum::http::header::ACCESS_CONTROL_REQUEST_METHOD) {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(String::from);
    let record = |outcome: Result<(), String>| {
        if let Err(violation) = outcome {
            eprintln!("openapi.yaml violation: {method} {path}: {violation}");
            violations.lock().expect("violations").push(format!("{method} {path}: {violation}"));
        }
    };
    if !content_type.as_deref().is_some_and(is_json) {
        let empty = response.body().size_hint().exact() == Some(0);
        record(contract().check(&method, &path, status, content_type.as_deref(), Body::Opaque { empty }));
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_JSON_ANSWER).await {
        Ok(bytes) => bytes,
        Err(err) => {
            record(Err(format!("the JSON body could not be read: {err}")));
            return axum::response::Response::from_parts(parts, axum::body::Body::empty());
        }
    };
    record(contract().check(&method, &path, status, content_type.as_deref(), Body::Bytes(&bytes)));
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}
