//! The API's contract: the OpenAPI document at `/openapi.json` against the server that serves it.
//! Schemathesis (installed by `scripts/setup.sh`) generates requests from the document — its
//! examples, the boundaries of every schema, random data, and stateful sequences that follow the
//! document's links — sends them to a live coordinator over HTTPS (verified against its
//! authority) with an account's credentials, and runs every check: a request the document allows
//! must not be refused for its form, one it forbids must be refused, every status and body must
//! be documented, no 5xx. Any failure fails this test, with Schemathesis' report.

use std::path::PathBuf;
use std::process::Command;

use parallax_server::config::PoolArgs;
use parallax_server::{Options, QuotaArgs};
use parallax_tests::{ArrClient, TestServer, data_dir};

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

    // A fixed seed, so a run can be repeated; PARALLAX_SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("PARALLAX_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[auth.openapi.account_key]
bearer = "{account}:{key}"

[auth.openapi.access_token]
bearer = "{token}"

[parameters]
"path.account_id" = "{account}"
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
