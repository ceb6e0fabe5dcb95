//! Each account's quotas: no account, and no crowd of guests in its spaces, takes what the
//! others need. Over a limit the caller gets ARR's error body naming the limit.

use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_server::config::PoolArgs;
use parallax_server::{Options, QuotaArgs};
use parallax_tests::{ArrClient, TestServer, data_dir, send, upload};
use serde_json::{Value, json};

/// A coordinator with `quotas` and room for more sessions than they allow, and an account of it.
async fn with_quotas(quotas: QuotaArgs) -> (tempfile::TempDir, TestServer, (String, String)) {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let options = Options {
        pool: PoolArgs {
            standard: 5,
            ..PoolArgs::default()
        },
        quotas,
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    (dir, server, account)
}

/// The account signed in, and the space `room` it made from `template` (a tablet its first
/// member).
async fn room(
    server: &TestServer,
    account: &str,
    key: &str,
    template: &str,
) -> (Coordinator, parallax_headset::space::Membership) {
    let owner = Coordinator::sign_in(&server.url(), account, key)
        .await
        .unwrap();
    let room = owner
        .create_space("room", template, json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    (owner, room)
}

/// A guest joins with `code` as a headset, as a browser does: the status and the body.
async fn guest_headset(server: &TestServer, code: &str, device: &str) -> (u16, Value) {
    let joined = server
        .http()
        .post(format!("{}/v1/browser/join", server.url()))
        .json(&json!({ "code": code, "device": device, "role": "headset" }))
        .send()
        .await
        .expect("the coordinator answers");
    (joined.status().as_u16(), joined.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_headsets_count_against_the_space_owner_and_the_fourth_over_three_is_refused() {
    let (_dir, server, (account, key)) = with_quotas(QuotaArgs {
        sessions: 3,
        ..QuotaArgs::default()
    })
    .await;
    let (owner, room) = room(&server, &account, &key, "private").await;
    let code = room.join_code.clone().unwrap();

    let mut guests = Vec::new();
    for n in 1..=3 {
        let (status, body) = guest_headset(&server, &code, &format!("headset {n}")).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["renderSession"]["id"].is_string(), "{body}");
        guests.push(body);
    }
    let (status, refused) = guest_headset(&server, &code, "headset 4").await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "QuotaExceeded", "{refused}");
    assert_eq!(refused["error"]["target"], "account-sessions", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("has 3 render sessions"), "{message}");
    // The refused guest is no member: the space still has its tablet and three headsets.
    let space = owner.space("room").await.unwrap();
    assert_eq!(space["members"].as_array().unwrap().len(), 4, "{space}");

    // The account's own ARR calls are held to the same quota.
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let put = arr.put("own-session", "standard", 30).await;
    assert_eq!(
        (put.status, put.code()),
        (429, "QuotaExceeded"),
        "{}",
        put.body
    );

    // A headset that leaves gives its session back: the next guest gets one.
    let leaving = &guests[0];
    let left = server
        .http()
        .delete(format!("{}/v1/spaces/room/members/me", server.url()))
        .bearer_auth(&owner.token)
        .header(
            "parallax-member",
            leaving["member"]["token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 204);
    let (status, body) = guest_headset(&server, &code, "headset 4").await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_opens_no_more_spaces_and_stores_no_more_bytes_than_it_may() {
    let part = strip_stl(12_000);
    let (_dir, server, (account, key)) = with_quotas(QuotaArgs {
        spaces: 1,
        // Room for one part, not for two.
        storage_mb: 1,
        ..QuotaArgs::default()
    })
    .await;
    assert!(
        part.len() > 512 * 1024 && part.len() < 1024 * 1024,
        "{}",
        part.len()
    );
    let _room = room(&server, &account, &key, "default").await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let second = send(
        server
            .http()
            .put(format!("{}/v1/spaces/hall", server.url()))
            .bearer_auth(&arr.token)
            .json(&json!({ "device": "tablet", "role": "tablet" })),
    )
    .await;
    assert_eq!(
        (second.status, second.code()),
        (403, "QuotaExceeded"),
        "{}",
        second.body
    );
    assert_eq!(second.body["error"]["target"], "account-spaces");

    let first = upload(&server, &arr.token, &[("bracket.stl", part.clone())]).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let mut other = part.clone();
    other[0] ^= 1; // Another file (its header differs), as big.
    let refused = upload(&server, &arr.token, &[("bracket-2.stl", other)]).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "QuotaExceeded"),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["target"], "account-storage-mb");
    // What was stored is untouched, and the same upload again is no new bytes.
    let again = upload(&server, &arr.token, &[("bracket.stl", part)]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    server.stop().await;
}

/// A binary STL of `triangles` small triangles in a row: about 50 bytes each.
fn strip_stl(triangles: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; 80];
    bytes.extend(triangles.to_le_bytes());
    for i in 0..triangles {
        let x = i as f32 * 0.01;
        bytes.extend([0u8; 12]);
        for corner in [[x, 0., 0.], [x + 0.01, 0., 0.], [x, 0.01, 0.]] {
            bytes.extend(corner.iter().flat_map(|c: &f32| c.to_le_bytes()));
        }
        bytes.extend([0u8; 2]);
    }
    bytes
}

/// A headset's lease is short and renewed while it is a member: it never runs for a day after
/// its headset is gone. Leaving ends it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headsets_lease_follows_its_membership() {
    use std::sync::Arc;
    use std::time::Duration;

    use parallax_core::time::Timestamp;
    use parallax_server::clock::ManualClock;

    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let clock = Arc::new(ManualClock::starting_at(Timestamp::from_millis(
        1_800_000_000_000,
    )));
    let options = Options {
        pool: PoolArgs {
            poll_interval_ms: 0,
            ..PoolArgs::default()
        },
        clock: clock.clone(),
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let (owner, _) = room(&server, &account, &key, "default").await;
    let headset = owner
        .join_space("room", "headset", Role::Headset, None)
        .await
        .unwrap();
    // Connected, so the headset stays a member however long the room runs.
    let _socket = headset.connect().await.unwrap();
    let session = headset.render_session.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lease = || async {
        let properties = owner.own_render_session(&session).await.unwrap();
        (
            properties["status"].as_str().unwrap().to_string(),
            properties["maxLeaseTimeMinutes"].as_u64().unwrap(),
        )
    };
    assert_eq!(lease().await, ("Ready".into(), 10));

    // Six minutes on, four are left: the lease is renewed to ten from now.
    clock.advance(Duration::from_secs(6 * 60));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lease().await.1 == 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was not renewed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lease().await, ("Ready".into(), 16));
    // Past the first ten minutes, the member still renders.
    clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(lease().await.0, "Ready");

    headset.leave().await.unwrap();
    assert_eq!(lease().await.0, "Stopped");
    server.stop().await;
}
