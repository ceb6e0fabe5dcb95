//! Models belong to the account that uploaded them. Two accounts on one coordinator: what one
//! uploads, the other neither sees, nor fetches, nor deletes, nor shows, nor renders — not even
//! by uploading the same bytes; nobody without a sign-in sees anything; a guest of a space sees
//! its owner's models.

use parallax_core::device::HostMessage;
use parallax_core::space::Role;
use parallax_headset::{Coordinator, RenderConnection, RenderEvent};
use parallax_render::samples;
use parallax_tests::{
    ArrClient, TestServer, data_dir, get_json_with_cookie, guest_cookie, model_ids, send, upload,
    within,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_upload_is_invisible_to_another_and_to_the_anonymous() {
    let dir = data_dir();
    let (a_id, a_key) = ArrClient::create_account(dir.path(), "Design").await;
    let (b_id, b_key) = ArrClient::create_account(dir.path(), "Visitors").await;
    let server = TestServer::start(dir.path()).await;
    server.wait_for_standby().await;
    let a = ArrClient::sign_in(&server, &a_id, &a_key).await;
    let b = ArrClient::sign_in(&server, &b_id, &b_key).await;
    let url = |path: &str| format!("{}{path}", server.url());

    let stl = samples::bracket().to_binary_stl();
    let secret = send(
        reqwest::Client::new()
            .post(url("/v1/models"))
            .bearer_auth(&a.token)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("name", "Secret prototype")
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(stl.clone()).file_name("proto.stl"),
                    ),
            ),
    )
    .await;
    assert_eq!(secret.status, 201, "{}", secret.body);
    let id = secret.body["id"].as_str().unwrap().to_string();
    let model_url = url(&format!("/v1/models/{id}"));
    let thumbnail_url = url(&format!("/v1/models/{id}/thumbnail.png"));

    // Nobody without a sign-in sees the catalog, a model or a thumbnail.
    for path in [url("/v1/models"), model_url.clone(), thumbnail_url.clone()] {
        let anonymous = send(reqwest::Client::new().get(&path)).await;
        assert_eq!(anonymous.status, 401, "{path}");
    }

    // The other account: not listed, and 404 — as if it did not exist — to read or delete.
    let listed_for_b = model_ids(&server, &b.token).await;
    assert!(!listed_for_b.contains(&id), "{listed_for_b:?}");
    assert!(
        listed_for_b.contains(&"gear".to_string()),
        "samples are shared"
    );
    assert_eq!(b.call(Method::GET, &model_url, None).await.status, 404);
    assert_eq!(b.call(Method::GET, &thumbnail_url, None).await.status, 404);
    assert_eq!(b.call(Method::DELETE, &model_url, None).await.status, 404);
    let still = a.call(Method::GET, &model_url, None).await;
    assert_eq!(
        (still.status, still.body["name"].as_str()),
        (200, Some("Secret prototype"))
    );

    // The same bytes from the other account: a new model of its own, nothing about the first.
    let copy = upload(&server, &b.token, &[("copy.stl", stl.clone())]).await;
    assert_eq!(copy.status, 201, "not 'stored before': {}", copy.body);
    let copy_id = copy.body["id"].as_str().unwrap().to_string();
    assert_ne!(copy_id, id);
    assert_eq!(copy.body["name"], "copy.stl");
    let listed_for_a = model_ids(&server, &a.token).await;
    assert!(listed_for_a.contains(&id));
    assert!(!listed_for_a.contains(&copy_id));
    // Deleting its copy leaves the first account's model whole, picture included.
    let copy_url = url(&format!("/v1/models/{copy_id}"));
    assert_eq!(b.call(Method::DELETE, &copy_url, None).await.status, 204);
    let picture = reqwest::Client::new()
        .get(&thumbnail_url)
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(picture.status(), 200);
    assert!(picture.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // The other account's space cannot show it, and its render sessions cannot load it.
    let b_coordinator = Coordinator::sign_in(&server.url(), &b_id, &b_key)
        .await
        .unwrap();
    let lobby = b_coordinator
        .create_space("lobby", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let shown = lobby.select(&id).await;
    assert!(
        matches!(shown, Err(parallax_headset::ClientError::NotFound(_))),
        "{shown:?}"
    );
    let headset = b_coordinator
        .join_space("lobby", "headset", Role::Headset, None)
        .await
        .unwrap();
    let render_url = headset
        .render_url(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let mut render = within(RenderConnection::connect(&render_url))
        .await
        .unwrap();
    render.load(&id).await.unwrap();
    let refused = loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Message(HostMessage::LoadFailed { reason, .. }) => break reason,
            RenderEvent::Message(HostMessage::LoadDone { .. }) => {
                panic!("another account's model loaded")
            }
            _ => {}
        }
    };
    assert!(refused.contains("no model"), "{refused}");
    server.stop().await;
}

#[tokio::test]
async fn a_guest_sees_the_models_of_the_space_it_joined_and_no_others() {
    let dir = data_dir();
    let (a_id, a_key) = ArrClient::create_account(dir.path(), "Design").await;
    let (b_id, b_key) = ArrClient::create_account(dir.path(), "Visitors").await;
    let server = TestServer::start(dir.path()).await;
    let url = |path: &str| format!("{}{path}", server.url());
    let mut uploads = Vec::new();
    let mut codes = Vec::new();
    for ((account, key), (room, part)) in [(&a_id, &a_key), (&b_id, &b_key)]
        .into_iter()
        .zip([("room-a", samples::bracket()), ("room-b", samples::shaft())])
    {
        let arr = ArrClient::sign_in(&server, account, key).await;
        let up = upload(&server, &arr.token, &[("part.stl", part.to_binary_stl())]).await;
        uploads.push(up.body["id"].as_str().unwrap().to_string());
        let coordinator = Coordinator::sign_in(&server.url(), account, key)
            .await
            .unwrap();
        let room = coordinator
            .create_space(room, "private", json!({}), "tablet", Role::Tablet)
            .await
            .unwrap();
        codes.push(room.join_code.clone().unwrap());
    }
    let cookie = guest_cookie(&server, &codes[0]).await;
    let listed = get_json_with_cookie(&server, "/v1/models", &cookie).await;
    let listed: Vec<&str> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&uploads[0].as_str()), "{listed:?}");
    assert!(!listed.contains(&uploads[1].as_str()), "{listed:?}");
    let other = reqwest::Client::new()
        .get(url(&format!("/v1/models/{}/thumbnail.png", uploads[1])))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    server.stop().await;
}
