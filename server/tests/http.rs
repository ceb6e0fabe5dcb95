//! The HTTP surface, driven in-process with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use parallax_server::{AppState, Options, app};
use serde_json::Value;
use tower::ServiceExt;

async fn state(dir: &tempfile::TempDir) -> AppState {
    AppState::open(dir.path(), &Options::new(dir.path().join("site")))
        .await
        .unwrap()
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// An access token of a new account of `state`'s data dir.
async fn token(state: &AppState, dir: &tempfile::TempDir) -> String {
    let data = parallax_server::config::DataDir {
        path: dir.path().to_path_buf(),
        database_url: None,
    };
    let account = parallax_server::create_account(&data, "catalog")
        .await
        .unwrap();
    let request = Request::get(format!("/accounts/{}/token", account.id))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}:{}", account.id, account.key),
        )
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["AccessToken"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_catalog_lists_the_sample_models_with_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let (status, _) = call(&state, get("/v1/models")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "only to someone signed in"
    );
    let token = token(&state, &dir).await;
    let request = Request::get("/v1/models")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<_> = body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, ["bracket", "gear", "shaft", "gearbox"]);
    assert!(body["models"][1]["triangles"].as_u64().unwrap() > 100);
}

#[tokio::test]
async fn health_tells_anyone_it_is_up_and_only_a_signed_in_account_the_details() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let (status, body) = call(&state, get("/v1/health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "status": "ok" }),
        "nothing about the hosts"
    );
    let token = token(&state, &dir).await;
    let request = Request::get("/v1/health")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "ok");
    assert!(!body["renderer"].as_str().unwrap().is_empty());
    assert!(
        body["pool"].is_array() && body["hosts"].is_array(),
        "{body}"
    );
}

#[tokio::test]
async fn the_console_pages_are_server_rendered_and_hydrate() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir).await;
    let cookie = format!("parallax_session={}", token(&state, &dir).await);
    for (path, marker) in [
        // Each page's own content, not the top bar every page shares.
        ("/", "<h2>New space</h2>"),
        ("/spaces", "Create space"),
        ("/sign-in", r#"name="account""#),
        ("/headset", "Join code"),
        ("/join?code=123456", r#"value="123456""#),
        ("/join?code=123456&role=tablet", "Browser tablet"),
    ] {
        let signed_in = Request::get(path)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let (status, html) = call(&state, signed_in).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            html.contains(r#"href="/pkg/parallax.js""#),
            "{path} loads the wasm bundle"
        );
        assert!(html.contains(marker), "{path} shows {marker}");
    }
    // The account's pages are for a signed-in browser: without one, sign in first.
    for path in ["/", "/spaces"] {
        let (status, _) = call(&state, get(path)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path} without a sign-in");
    }
    // The first slice's unauthenticated selection is gone: spaces are the only way to select.
    let (status, _) = call(
        &state,
        Request::put("/v1/selection")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"modelId":"gear"}"#))
            .unwrap(),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_session_api() {
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = call(&state(&dir).await, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let session = &doc["paths"]["/accounts/{account_id}/sessions/{session_id}"];
    for method in ["put", "get", "patch"] {
        assert!(session[method].is_object(), "{method} is documented");
    }
    assert!(session["put"]["responses"]["409"].is_object());
    assert!(doc["paths"]["/accounts/{account_id}/sessions/{session_id}/:stop"]["post"].is_object());
    assert!(doc["paths"]["/v1/accounts/{account_id}/sessions/create"]["post"].is_object());
    let schemas = &doc["components"]["schemas"];
    let properties = &schemas["SessionProperties"]["properties"];
    for field in [
        "id",
        "status",
        "size",
        "maxLeaseTimeMinutes",
        "elapsedTimeMinutes",
        "creationTime",
        "queuePosition",
    ] {
        assert!(properties[field].is_object(), "SessionProperties.{field}");
    }
    assert!(schemas["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["access_token"].is_object());
}
