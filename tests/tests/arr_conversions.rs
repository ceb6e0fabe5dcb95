//! ARR's conversion API (2021-01-01) over HTTP, as an ARR client calls it: a model file in a
//! storage container (a folder in the account's own storage, `ROOT/ACCOUNT/`) is converted into the catalog, honouring
//! the `ConversionSettings.json` beside it, and the asset is written to the output container.
//! Status codes, body shapes, idempotent PUTs, paging and the error body are ARR's.

use std::path::{Path, PathBuf};

use parallax_render::Mesh;
use parallax_tests::{Answer, ArrClient, TestServer, data_dir, get_json};
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

fn real(file: &str) -> Vec<u8> {
    let path = format!(
        "{}/../render/step/tests/data/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Setup {
    /// The data dir, when the setup owns it.
    _dir: Option<tempfile::TempDir>,
    server: TestServer,
    arr: ArrClient,
    /// The account's own storage: `storage/ACCOUNT/` in the data dir.
    storage: PathBuf,
}

async fn setup() -> Setup {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "converters").await;
    // No bound on conversions under way: the listing's test starts 51 at once, faster than
    // `parallax-step` reads them, and the quota has a test of its own.
    let options = TestServer::options(dir.path());
    let options = parallax_server::Options {
        quotas: parallax_server::QuotaArgs {
            conversions: 0,
            ..options.quotas.clone()
        },
        ..options
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let storage = own_storage(dir.path(), &account);
    Setup {
        _dir: Some(dir),
        server,
        arr,
        storage,
    }
}

/// `account`'s storage under the storage root of the data dir `data`, made if missing.
fn own_storage(data: &Path, account: &str) -> PathBuf {
    let storage = data.join("storage").join(account);
    std::fs::create_dir_all(&storage).unwrap();
    storage.canonicalize().unwrap()
}

fn container(storage: &Path, name: &str) -> (PathBuf, String) {
    let path = storage.join(name);
    std::fs::create_dir_all(&path).unwrap();
    let url = Url::from_file_path(&path).unwrap().to_string();
    (path, url)
}

impl Setup {
    fn url(&self, id: &str) -> String {
        format!(
            "{}/accounts/{}/conversions/{id}?api-version=2021-01-01",
            self.arr.base, self.arr.account
        )
    }

    async fn put(&self, id: &str, settings: Value) -> Answer {
        let body = json!({ "settings": settings });
        self.arr.call(Method::PUT, &self.url(id), Some(body)).await
    }

    /// Conversion `id` once it has ended.
    async fn ended(&self, id: &str) -> Value {
        for _ in 0..600 {
            let answer = self.arr.call(Method::GET, &self.url(id), None).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            if !["NotStarted", "Running"].contains(&answer.body["status"].as_str().unwrap()) {
                return answer.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("conversion {id} did not end within 30 s");
    }
}

fn settings(input: &str, prefix: &str, file: &str, output: &str) -> Value {
    json!({
        "inputLocation": {
            "storageContainerUri": input,
            "storageContainerReadListSas": "sv=2020-08-04&sig=secret",
            "blobPrefix": prefix,
            "relativeInputAssetPath": file,
        },
        "outputLocation": {
            "storageContainerUri": output,
            "storageContainerWriteSas": "sv=2020-08-04&sig=secret",
            "blobPrefix": "converted",
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_file_in_a_container_converts_into_the_catalog_and_the_output_container() {
    let setup = setup().await;
    let (input, input_url) = container(&setup.storage, "designs");
    let (output, output_url) = container(&setup.storage, "assets");
    std::fs::create_dir_all(input.join("connectors")).unwrap();
    std::fs::write(
        input.join("connectors/XT60.step"),
        real("AMASS_XT60-F_1x02_P7.2mm_Vertical.step"),
    )
    .unwrap();
    // ARR's settings file beside the model: millimetres to metres, centred on the origin.
    std::fs::write(
        input.join("connectors/XT60.ConversionSettings.json"),
        br#"{ "scaling": 0.001, "recenterToOrigin": true, "opaqueMaterialDefaultSidedness": "SingleSided" }"#,
    )
    .unwrap();
    let wanted = settings(&input_url, "connectors", "XT60.step", &output_url);

    let created = setup.put("xt60-1", wanted.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.headers.contains_key("ms-cv"));
    assert_eq!(created.body["id"], "xt60-1");
    assert!(["NotStarted", "Running"].contains(&created.body["status"].as_str().unwrap()));
    assert!(
        created.body["creationTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // The settings come back as given, without the access signatures.
    assert_eq!(
        created.body["settings"]["inputLocation"]["relativeInputAssetPath"],
        "XT60.step"
    );
    assert!(
        !created.body.to_string().contains("secret"),
        "{}",
        created.body
    );

    // A retry with the same settings is the same conversion; other settings are a conflict.
    let again = setup.put("xt60-1", wanted.clone()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["creationTime"], created.body["creationTime"]);
    let other = settings(&input_url, "connectors", "other.step", &output_url);
    let conflict = setup.put("xt60-1", other).await;
    assert_eq!(
        (conflict.status, conflict.code()),
        (409, "Conflict"),
        "{}",
        conflict.body
    );
    assert!(
        conflict.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("xt60-1")
    );

    let done = setup.ended("xt60-1").await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(done["error"].is_null(), "{done}");
    let asset_url = done["output"]["outputAssetUri"].as_str().unwrap();
    let asset = Url::parse(asset_url).unwrap().to_file_path().unwrap();
    assert_eq!(asset, output.join("converted/XT60.arrAsset"));

    // The asset is the converted mesh: scaled to metres and centred, as the settings said.
    let mesh = Mesh::from_bytes(&std::fs::read(&asset).unwrap()).unwrap();
    let bounds = mesh.bounds().unwrap();
    assert!(bounds.center().length() < 1e-6, "{bounds:?}");
    let size = bounds.max - bounds.min;
    assert!((size.y - 0.0081).abs() < 5e-5, "{size} m");

    // And it is a Ready model of the account's catalog, named after its file.
    let model_id = done["output"]["modelId"].as_str().unwrap();
    let model = get_json(
        &setup.server,
        &format!("/v1/models/{model_id}"),
        &setup.arr.token,
    )
    .await;
    assert_eq!(model["status"], "Ready", "{model}");
    assert_eq!(model["name"], "XT60.step");
    assert_eq!(model["format"], "STEP");

    // The list, oldest first, in pages of 50 with ARR's @nextLink.
    for n in 2..=51 {
        let answer = setup.put(&format!("xt60-{n}"), wanted.clone()).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let list_url = format!(
        "{}/accounts/{}/conversions?api-version=2021-01-01",
        setup.arr.base, setup.arr.account
    );
    let first = setup.arr.call(Method::GET, &list_url, None).await;
    assert_eq!(first.status, 200);
    let page = first.body["conversions"].as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0]["id"], "xt60-1");
    let next = first.body["@nextLink"].as_str().unwrap();
    let second = setup.arr.call(Method::GET, next, None).await;
    assert_eq!(second.body["conversions"].as_array().unwrap().len(), 1);
    assert!(second.body.get("@nextLink").is_none());
    // The same files made the same model, converted once.
    let last = setup.ended("xt60-51").await;
    assert_eq!(last["output"]["modelId"], model_id);
    setup.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_that_cannot_run_fail_with_the_reason() {
    let setup = setup().await;
    let (input, input_url) = container(&setup.storage, "in");
    let (_, output_url) = container(&setup.storage, "out");
    std::fs::write(input.join("broken.stl"), b"solid nothing\nfacet normal 0 0").unwrap();

    let created = setup
        .put(
            "missing",
            settings(&input_url, "", "gone.step", &output_url),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let failed = setup.ended("missing").await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert_eq!(failed["error"]["code"], "InputContainerError", "{failed}");
    assert!(failed["output"].is_null());

    setup
        .put(
            "broken",
            settings(&input_url, "", "broken.stl", &output_url),
        )
        .await;
    let failed = setup.ended("broken").await;
    assert_eq!(failed["error"]["code"], "InvalidInput", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken.stl")
    );
    setup.server.stop().await;
}

#[tokio::test]
async fn requests_outside_the_storage_or_the_api_are_refused_as_arr_did() {
    let setup = setup().await;
    let (_, input_url) = container(&setup.storage, "in");
    let (_, output_url) = container(&setup.storage, "out");
    let outside = Url::from_file_path(std::env::temp_dir())
        .unwrap()
        .to_string();
    // Not a container of this account: 404, as for a container that does not exist.
    for (body, target) in [
        (
            settings(&outside, "", "a.step", &output_url),
            "inputLocation",
        ),
        (
            settings(&input_url, "", "a.step", &format!("{output_url}/../../..")),
            "outputLocation",
        ),
    ] {
        let answer = setup.put("refused", body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "NotFound"),
            "{target}: {}",
            answer.body
        );
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("not a storage container of this account"),
            "{message}"
        );
    }
    let cases = [
        (
            settings(
                "https://contoso.blob.core.windows.net/arrinput",
                "",
                "a.step",
                &output_url,
            ),
            "settings.inputLocation.storageContainerUri",
            "file: URL",
        ),
        (
            settings(&input_url, "../..", "a.step", &output_url),
            "settings.inputLocation.relativeInputAssetPath",
            "plain names",
        ),
    ];
    for (body, target, says) in cases {
        let answer = setup.put("refused", body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "BadRequest"),
            "{}",
            answer.body
        );
        assert_eq!(answer.body["error"]["target"], target, "{}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        let root = setup.storage.parent().unwrap().to_str().unwrap();
        assert!(!message.contains(root), "the storage root shows: {message}");
    }
    let mut renamed = settings(&input_url, "", "a.step", &output_url);
    renamed["outputLocation"]["outputAssetFilename"] = json!("a.glb");
    let answer = setup.put("refused", renamed).await;
    assert_eq!(
        answer.body["error"]["target"],
        "settings.outputLocation.outputAssetFilename"
    );
    let answer = setup
        .put(
            "no spaces please",
            settings(&input_url, "", "a.step", &output_url),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["error"]["target"].as_str()),
        (400, Some("conversionId"))
    );
    let answer = setup
        .arr
        .call(
            Method::PUT,
            &setup.url("x"),
            Some(json!({ "settings": { "inputLocation": {} } })),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);

    // Nothing was stored by the refusals.
    let missing = setup
        .arr
        .call(Method::GET, &setup.url("refused"), None)
        .await;
    assert_eq!((missing.status, missing.code()), (404, "NotFound"));
    let versionless = setup
        .arr
        .call(
            Method::GET,
            &setup
                .url("refused")
                .replace("api-version=2021-01-01", "api-version=2020-01-01"),
            None,
        )
        .await;
    assert_eq!(versionless.body["error"]["target"], "api-version");
    setup.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_a_stop_interrupted_runs_again_at_the_next_start() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "converters").await;
    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let storage = own_storage(dir.path(), &account);
    let setup = Setup {
        _dir: None,
        server,
        arr,
        storage,
    };
    let (input, input_url) = container(&setup.storage, "in");
    let (output, output_url) = container(&setup.storage, "out");
    std::fs::write(input.join("screw.step"), real("screw.step")).unwrap();
    let answer = setup
        .put(
            "resumed",
            settings(&input_url, "", "screw.step", &output_url),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(setup.ended("resumed").await["status"], "Succeeded");
    setup.server.stop().await;

    // As a stop in the middle leaves it: running, nothing written yet.
    let asset = output.join("converted/screw.arrAsset");
    std::fs::remove_file(&asset).unwrap();
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("parallax.db"));
    let mut db = sqlx::ConnectOptions::connect(&options).await.unwrap();
    sqlx::query("UPDATE conversions SET status = 'Running', model_id = NULL, output_uri = NULL")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::Connection::close(db).await.unwrap();

    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let setup = Setup {
        _dir: Some(dir),
        server,
        arr,
        storage: setup.storage,
    };
    let done = setup.ended("resumed").await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(asset.is_file(), "the output was written again");
    setup.server.stop().await;
}

/// Account B names account A's containers, as input and as output: 404 both times, as for a
/// container that does not exist, and A's files are as they were. A link that A's folder holds
/// into B's storage does not lead B's output there either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_containers_are_not_found_and_stay_untouched() {
    let setup = setup().await;
    let (a_in, a_in_url) = container(&setup.storage, "designs");
    let (a_out, a_out_url) = container(&setup.storage, "assets");
    std::fs::write(a_in.join("screw.step"), real("screw.step")).unwrap();
    std::fs::write(a_out.join("screw.arrAsset"), b"A's asset").unwrap();
    let dir = setup
        .storage
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let (b_id, b_key) = ArrClient::create_account(&dir, "others").await;
    let b = ArrClient::sign_in(&setup.server, &b_id, &b_key).await;
    let b_storage = own_storage(&dir, &b_id);
    let (b_in, b_in_url) = container(&b_storage, "mine");
    let (_, b_out_url) = container(&b_storage, "out");
    std::fs::write(b_in.join("screw.step"), real("screw.step")).unwrap();
    let b_put = |id: &str, body: Value| {
        let url = format!(
            "{}/accounts/{b_id}/conversions/{id}?api-version=2021-01-01",
            b.base
        );
        let b = &b;
        async move {
            b.call(Method::PUT, &url, Some(json!({ "settings": body })))
                .await
        }
    };

    for (id, body, target) in [
        (
            "read-a",
            settings(&a_in_url, "", "screw.step", &b_out_url),
            "input",
        ),
        (
            "write-a",
            settings(&b_in_url, "", "screw.step", &a_out_url),
            "output",
        ),
    ] {
        let mut body = body;
        body["outputLocation"]["blobPrefix"] = json!("");
        let answer = b_put(id, body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "NotFound"),
            "{target}: {}",
            answer.body
        );
    }
    assert_eq!(
        std::fs::read(a_out.join("screw.arrAsset")).unwrap(),
        b"A's asset"
    );
    assert_eq!(
        std::fs::read_dir(&a_out).unwrap().count(),
        1,
        "nothing new in A's container"
    );
    let (a_models, b_models) = (
        setup
            .arr
            .call(Method::GET, &format!("{}/v1/models", setup.arr.base), None)
            .await,
        b.call(Method::GET, &format!("{}/v1/models", b.base), None)
            .await,
    );
    let uploads = |answer: &Answer| {
        let models = answer.body["models"].as_array().expect("a list of models");
        models.iter().filter(|m| m["source"] == "upload").count()
    };
    assert_eq!(
        (uploads(&a_models), uploads(&b_models)),
        (0, 0),
        "nothing converted into either catalog"
    );

    // A link in B's own container into A's storage is not followed for B's output.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&a_out, b_storage.join("sneaky")).unwrap();
        let sneaky = Url::from_file_path(b_storage.join("sneaky"))
            .unwrap()
            .to_string();
        let mut body = settings(&b_in_url, "", "screw.step", &sneaky);
        body["outputLocation"]["blobPrefix"] = json!("");
        let answer = b_put("through-a-link", body).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let url = format!(
            "{}/accounts/{b_id}/conversions/through-a-link?api-version=2021-01-01",
            b.base
        );
        let ended = loop {
            let now = b.call(Method::GET, &url, None).await.body;
            if !["NotStarted", "Running"].contains(&now["status"].as_str().unwrap()) {
                break now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(ended["status"], "Failed", "{ended}");
        assert_eq!(ended["error"]["code"], "OutputContainerError", "{ended}");
        let message = ended["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("outside this account's storage"),
            "{message}"
        );
        assert!(!message.contains(dir.to_str().unwrap()), "{message}");
        assert_eq!(
            std::fs::read(a_out.join("screw.arrAsset")).unwrap(),
            b"A's asset"
        );
    }
    setup.server.stop().await;
}

/// With room for one conversion at a time, an account's STEP conversion runs (it is not counted
/// twice, as a conversion and as its model converting) and a second one meanwhile is refused
/// with ARR's error body naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_has_no_more_conversions_under_way_than_its_quota() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "converters").await;
    let options = parallax_server::Options {
        quotas: parallax_server::QuotaArgs {
            conversions: 1,
            ..Default::default()
        },
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let storage = own_storage(dir.path(), &account);
    let setup = Setup {
        _dir: Some(dir),
        server,
        arr,
        storage,
    };
    let (input, input_url) = container(&setup.storage, "in");
    let (_, output_url) = container(&setup.storage, "out");
    std::fs::write(input.join("screw.step"), real("screw.step")).unwrap();
    let wanted = settings(&input_url, "", "screw.step", &output_url);
    let first = setup.put("first", wanted.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = setup.put("second", wanted.clone()).await;
    assert_eq!(
        (second.status, second.code()),
        (429, "QuotaExceeded"),
        "{}",
        second.body
    );
    assert_eq!(second.body["error"]["target"], "account-conversions");
    // A retry of the first is no conversion more.
    assert_eq!(setup.put("first", wanted.clone()).await.status, 200);
    let done = setup.ended("first").await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    // Once it has ended, there is room again.
    assert_eq!(setup.put("second", wanted).await.status, 201);
    assert_eq!(setup.ended("second").await["status"], "Succeeded");
    setup.server.stop().await;
}
