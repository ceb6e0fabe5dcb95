//! The model catalog: uploads are checked, stored once, thumbnailed by our renderer, shown on
//! headsets, deleted with care, and kept across restarts. Every file here is made by the test.

use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_render::samples;
use parallax_server::Options;
use parallax_tests::{ArrClient, TestServer, data_dir, frame_of, model_ids, send, upload};
use reqwest::Method;

async fn signed_in(
    options: impl FnOnce(&std::path::Path) -> Options,
) -> (tempfile::TempDir, TestServer, ArrClient) {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "designers").await;
    let server = TestServer::start_with_options(dir.path(), &options(dir.path())).await;
    let client = ArrClient::sign_in(&server, &account, &key).await;
    (dir, server, client)
}

/// How many of the data dir's model folders hold a file named `name`.
fn files_named(dir: &tempfile::TempDir, name: &str) -> usize {
    std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .filter(|folder| folder.as_ref().unwrap().path().join(name).is_file())
        .count()
}

#[tokio::test]
async fn an_uploaded_model_is_stored_once_thumbnailed_and_listed() {
    let (dir, server, arr) = signed_in(TestServer::options).await;
    let stl = samples::gear().to_binary_stl();
    let created = upload(&server, &arr.token, &[("gear-copy.stl", stl.clone())]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["triangles"], samples::gear().triangles());
    assert_eq!(created.body["format"], "STL");
    assert_eq!(created.body["source"], "upload");
    assert_eq!(created.body["sizeBytes"], stl.len());
    assert_eq!(files_named(&dir, "gear-copy.stl"), 1, "kept on disk");

    let again = upload(&server, &arr.token, &[("gear-copy.stl", stl)]).await;
    assert_eq!(
        (again.status, again.body["id"].as_str()),
        (200, Some(id.as_str())),
        "stored once"
    );
    assert_eq!(
        model_ids(&server, &arr.token)
            .await
            .iter()
            .filter(|m| **m == id)
            .count(),
        1
    );

    let thumbnail = reqwest::Client::new()
        .get(format!(
            "{}{}",
            server.url(),
            created.body["thumbnailUrl"].as_str().unwrap()
        ))
        .bearer_auth(&arr.token)
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.headers()["content-type"], "image/png");
    let png = thumbnail.bytes().await.unwrap();
    let picture = parallax_render::decode_png(&png).expect("a PNG");
    assert_eq!((picture.width, picture.height), (480, 360));
    // The gear itself, framed: a good share of the picture, not an empty background.
    let covered = picture.coverage();
    assert!(
        (0.1..0.9).contains(&covered),
        "the gear covers {covered:.3}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_gltf_with_its_buffer_in_a_second_file_uploads_whole() {
    let (_dir, server, arr) = signed_in(TestServer::options).await;
    let corners: Vec<u8> = [[0f32, 0., 0.], [1., 0., 0.], [0., 1., 0.]]
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let gltf = r#"{"asset":{"version":"2.0"},"scene":0,"scenes":[{"nodes":[0]}],"nodes":[{"mesh":0}],
        "meshes":[{"primitives":[{"attributes":{"POSITION":0}}]}],
        "buffers":[{"byteLength":36,"uri":"triangle.bin"}],"bufferViews":[{"buffer":0,"byteLength":36}],
        "accessors":[{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]}]}"#;
    let alone = upload(
        &server,
        &arr.token,
        &[("triangle.gltf", gltf.as_bytes().to_vec())],
    )
    .await;
    assert_eq!((alone.status, alone.code()), (422, "InvalidModel"));
    assert!(
        alone.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("triangle.bin")
    );

    let whole = upload(
        &server,
        &arr.token,
        &[
            ("triangle.gltf", gltf.as_bytes().to_vec()),
            ("triangle.bin", corners),
        ],
    )
    .await;
    assert_eq!(whole.status, 201, "{}", whole.body);
    assert_eq!(
        (
            whole.body["format"].as_str(),
            whole.body["triangles"].as_u64()
        ),
        (Some("glTF"), Some(1))
    );
    server.stop().await;
}

#[tokio::test]
async fn broken_uploads_are_refused_with_the_reason_and_leave_the_catalog_alone() {
    let (dir, server, arr) = signed_in(|dir| Options {
        max_upload_bytes: 256 * 1024,
        ..TestServer::options(dir)
    })
    .await;
    let before = model_ids(&server, &arr.token).await;
    let gear = samples::gear().to_binary_stl();
    let nan: Vec<u8> = {
        let mut bytes = samples::gear().to_binary_stl();
        bytes[84 + 12..84 + 16].copy_from_slice(&f32::NAN.to_le_bytes());
        bytes
    };
    let flat = {
        let mut bytes = vec![0u8; 80];
        bytes.extend(1u32.to_le_bytes());
        bytes.extend([0u8; 12]);
        for corner in [[0f32, 0., 0.], [1., 1., 1.], [2., 2., 2.]] {
            bytes.extend(corner.iter().flat_map(|c| c.to_le_bytes()));
        }
        bytes.extend([0u8; 2]);
        bytes
    };
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.stl", gear[..gear.len() - 30].to_vec(), "STL"),
        ("noise.stl", noise.clone(), "STL"),
        ("noise.obj", b"\x00\x01binary garbage\xff".to_vec(), "OBJ"),
        (
            "json.glb",
            br#"{"asset":{"version":"2.0"}}"#.to_vec(),
            "binary glTF",
        ),
        (
            "missing.gltf",
            br#"{"asset":{"version":"2.0"},"buffers":[{"byteLength":8,"uri":"gone.bin"}]}"#
                .to_vec(),
            "gone.bin",
        ),
        ("nan.stl", nan, "finite"),
        ("flat.stl", flat, "no drawable triangles"),
    ];
    for (name, bytes, says) in cases {
        let answer = upload(&server, &arr.token, &[(name, bytes)]).await;
        assert_eq!(answer.status, 422, "{name}: {}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{name}: {message:?} should mention {says:?}"
        );
        assert!(
            message.contains(name),
            "{name}: the message names the file: {message}"
        );
    }

    let unknown = upload(&server, &arr.token, &[("model.fbx", noise.clone())]).await;
    assert_eq!(
        (unknown.status, unknown.body["error"]["target"].as_str()),
        (422, Some("file"))
    );
    let sneaky = upload(&server, &arr.token, &[("../../escape.stl", gear.clone())]).await;
    assert_eq!(sneaky.status, 422);
    let huge = upload(&server, &arr.token, &[("huge.stl", vec![7u8; 300 * 1024])]).await;
    assert_eq!((huge.status, huge.code()), (413, "PayloadTooLarge"));
    let anonymous = send(reqwest::Client::new().post(format!("{}/v1/models", server.url()))).await;
    assert_eq!(anonymous.status, 401);

    assert_eq!(
        model_ids(&server, &arr.token).await,
        before,
        "nothing was added"
    );
    let stored: Vec<_> = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .collect();
    assert!(stored.is_empty(), "no files were kept: {stored:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_shown_on_headsets_deleted_with_care_and_kept_across_restarts() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "designers").await;
    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let bracket = upload(
        &server,
        &arr.token,
        &[("bracket.stl", samples::bracket().to_binary_stl())],
    )
    .await;
    let id = bracket.body["id"].as_str().unwrap().to_string();
    server.stop().await;

    // After a restart the upload is still there: a space shows it, a headset renders it.
    let server = TestServer::start(dir.path()).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    assert!(model_ids(&server, &arr.token).await.contains(&id));
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let tablet = coordinator
        .create_space(
            "review",
            "default",
            serde_json::json!({}),
            "tablet",
            Role::Tablet,
        )
        .await
        .unwrap();
    let headset = coordinator
        .join_space("review", "headset", Role::Headset, None)
        .await
        .unwrap();
    tablet.select(&id).await.unwrap();
    let render_url = headset
        .render_url(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let frame = frame_of(&render_url, &id).await;
    assert_eq!((frame.width, frame.height), (320, 240));
    let pixels = &frame.pixels;
    assert!(pixels.iter().max().unwrap() - pixels.iter().min().unwrap() > 100);

    let model_url = format!("{}/v1/models/{id}", server.url());
    let shown = arr.call(Method::DELETE, &model_url, None).await;
    assert_eq!(
        (shown.status, shown.code()),
        (409, "Conflict"),
        "the model on screen stays"
    );
    assert!(
        shown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`review`"),
        "{:?}",
        shown.body
    );
    let sample = arr
        .call(
            Method::DELETE,
            &format!("{}/v1/models/gear", server.url()),
            None,
        )
        .await;
    assert_eq!(sample.status, 409, "samples stay");

    tablet.select("gear").await.unwrap();
    assert_eq!(arr.call(Method::DELETE, &model_url, None).await.status, 204);
    assert_eq!(arr.call(Method::GET, &model_url, None).await.status, 404);
    let thumbnail = arr
        .call(Method::GET, &format!("{model_url}/thumbnail.png"), None)
        .await;
    assert_eq!(thumbnail.status, 404);
    assert_eq!(
        files_named(&dir, "bracket.stl"),
        0,
        "its files went with it"
    );
    server.stop().await;
}
