//! The API's contract: the OpenAPI document at `/openapi.json` against the server that serves it.
//! Schemathesis (installed by `scripts/setup.sh`) generates requests from the document — its
//! examples, the boundaries of every schema, random data, and stateful sequences that follow the
//! document's links — sends them to a live coordinator over HTTPS (verified against its
//! authority) with an account's credentials, and runs every check: a request the document allows
//! must not be refused for its form, one it forbids must be refused, every status and body must
//! be documented, no 5xx. Any failure fails this test, with Schemathesis' report.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use parallax_server::config::PoolArgs;
use parallax_server::{Options, QuotaArgs};
use parallax_tests::{ArrClient, TestServer, data_dir, get_public_json, guest_cookie};
use serde_json::Value;
use serde_json::json;

#[path = "support/routes.rs"]
#[allow(dead_code)] // The access test reads all the routes; this one the coordinator's.
mod routes;

/// The `st` command: `PARALLAX_SCHEMATHESIS`, or where `scripts/setup.sh` installs it.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("PARALLAX_SCHEMATHESIS") {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME is set");
    cache.join("parallax/schemathesis-4.32.5/bin/st")
}

/// Examples per operation and phase: enough to reach every schema's edges, few enough that the
/// run stays well under three minutes on two cores.
const EXAMPLES: &str = "40";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_request_the_document_and_the_server_disagree_on() {
    let st = schemathesis();
    assert!(
        st.is_file(),
        "{} is missing: scripts/setup.sh installs Schemathesis",
        st.display()
    );
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "contract").await;
    // One session at a time for the account, below the pool's two: a full account is told so
    // (429), which a client can act on; a pool every account has filled answers 503.
    let options = Options {
        pool: PoolArgs {
            standard_standby: 0,
            ..PoolArgs::default()
        },
        quotas: QuotaArgs {
            sessions: 1,
            ..QuotaArgs::default()
        },
        tls: parallax_server::tls::TlsSetup::local(&["localhost", "127.0.0.1"]),
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let token = ArrClient::sign_in(&server, &account, &key).await.token;
    // A space with a member (a tablet: no render session to hold), and a guest of it, whose
    // cookie is the document's browser sign-in: a generated sign-out ends it, not the rest.
    let owner = ArrClient::sign_in(&server, &account, &key).await;
    let created = owner
        .call(
            reqwest::Method::PUT,
            &format!("{}/v1/spaces/contract-room", server.url()),
            Some(json!({ "device": "contract tablet", "role": "tablet" })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let member = created.body["member"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = created.body["space"]["joinCode"].as_str().unwrap();
    let guest = guest_cookie(&server, code).await;
    let guest = guest.split_once('=').unwrap().1;
    // A render host's credential, for what hosts fetch.
    let host = server.host_credential().await;

    // A fixed seed, so a run can be repeated; PARALLAX_SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("PARALLAX_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[auth.openapi.account_key]
bearer = "{account}:{key}"

[auth.openapi.access_token]
bearer = "{token}"

[auth.openapi.session_cookie]
api_key = "{guest}"

[auth.openapi.member_token]
api_key = "{member}"

[auth.openapi.host_credential]
bearer = "{host}"

[parameters]
"path.account_id" = "{account}"

# Beside Schemathesis' own list: 412, a write based on a change the space has moved on from (the
# state, as 409's); and 422, a request of the documented form that breaks a rule JSON Schema
# cannot state (a rotation of zero, a bound another field sets, a size in bytes, a template not
# configured), which the document lists, with the rules, on every operation that gives it. A
# request of the documented form is still never refused with 400.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]
"#
    );
    std::fs::write(work.path().join("schemathesis.toml"), config).unwrap();
    let output = Command::new(&st)
        .current_dir(work.path())
        .args(["run", &format!("{}/openapi.json", server.url())])
        .arg("--tls-verify")
        .arg(dir.path().join("tls/ca.crt"))
        .args(["--max-examples", EXAMPLES, "--seed", &seed, "--no-color"])
        .args(["--generation-database", "none"])
        // A connection that breaks under one request (a TLS EOF seen once in CI, not since) is
        // tried again, twice at most: what this test asserts is the answers, and a server that
        // keeps breaking connections still fails it.
        .args(["--request-retries", "2"])
        // Sockets answer an upgrade, not a request: the integration tests check their messages.
        .args(["--exclude-tag", "sockets"])
        .output()
        .expect("Schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "Schemathesis found requests the document and the server disagree on (above)"
    );
    assert!(
        report.contains("Tested: "),
        "Schemathesis tested the operations"
    );
}

/// `(method, path)` of every operation in the document; ARR's `:stop` action is the router's
/// `{action}`.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.replace("/:stop", "/{action}");
            ["get", "put", "post", "patch", "delete"]
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_describes_every_route_the_coordinator_serves_and_no_other() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    let document = get_public_json(&server, "/openapi.json").await;
    let documented = operations(&document);
    let served: BTreeSet<(String, String)> = routes::coordinator_routes()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    // Every route but the app's pages (HTML for browsers, not the API).
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "served but not in /openapi.json: {missing:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in /openapi.json but not served: {unserved:#?}"
    );
}
