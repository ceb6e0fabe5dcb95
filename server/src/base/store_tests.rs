//! The store's conformance suite: every check runs on a fresh SQLite file and on a fresh Postgres
//! database, and both must answer alike. Postgres is a throwaway cluster of Debian's `postgresql`
//! started for the run (`initdb` in a temporary folder, a Unix socket inside it, no TCP port), or
//! the server `PARALLAX_TEST_DATABASE_URL` names (a database is created in it for each check).

use std::future::Future;
use std::pin::Pin;

use parallax_core::pool::HostId;
use parallax_core::session::{RenderSession, SessionId, SessionKey, SessionSize, SessionStatus};
use parallax_core::time::Timestamp;
use parallax_core::{ChangeNumber, ModelId, ModelSummary};

use self::postgres::PostgresServer;
use crate::base::store::{
    Backend, LockedSpace, LoggedEvent, ModelRecord, ModelSource, ModelStatus, SPACE_LOG_KEPT,
    SpaceHolder, SpaceWrite, Store, StoredConversion, StoredHostLink,
};

// Shared with the process tests, which start coordinators on Postgres.
#[path = "../../tests/support/postgres.rs"]
mod postgres;

type Check = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every check, by name.
const CHECKS: &[(&str, Check)] = &[
    ("the catalog", |s| Box::pin(catalog(s))),
    ("uploads", |s| Box::pin(uploads(s))),
    ("conversions", |s| Box::pin(conversions(s))),
    ("spaces", |s| Box::pin(spaces(s))),
    ("the space log", |s| Box::pin(space_log(s))),
    ("replicas", |s| Box::pin(replicas(s))),
    ("accounts", |s| Box::pin(accounts(s))),
    ("settings", |s| Box::pin(settings(s))),
    ("render sessions", |s| Box::pin(render_sessions(s))),
    ("the shared pool", |s| Box::pin(shared_pool(s))),
];

#[tokio::test]
async fn the_store_conforms_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for (index, (name, check)) in CHECKS.iter().enumerate() {
        let store = Store::open(&dir.path().join(format!("check-{index}.db")))
            .await
            .unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        eprintln!("sqlite: {name}");
        check(store.clone()).await;
        store.close().await;
    }
}

#[tokio::test]
async fn a_data_dir_of_any_name_holds_its_own_database() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["with space", "hash#question?", "percent%41"] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let store = Store::open(&folder.join("parallax.db")).await.unwrap();
        store.insert_account(name, name, "hash").await.unwrap();
        store.close().await;
        assert!(folder.join("parallax.db").exists(), "{name}");
    }
    assert!(!dir.path().join("percentA").exists(), "a % stays a %");
}

#[tokio::test]
async fn the_store_conforms_on_postgres() {
    let server = PostgresServer::start();
    for (index, (name, check)) in CHECKS.iter().enumerate() {
        let url = server
            .new_database(&format!("parallax_check_{index}"))
            .await;
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        eprintln!("postgres: {name}");
        check(store.clone()).await;
        store.close().await;
    }
}

#[tokio::test]
async fn postgres_over_tls_is_verified_against_the_authority_given() {
    use crate::tls::{Tls, TlsSetup};

    let ours = tempfile::tempdir().unwrap();
    let local = TlsSetup::Local {
        names: vec!["coordinator.invalid".into()],
        host_domains: crate::tls::scope::Scope::parse(["localhost"]).unwrap(),
    };
    let authority = Tls::open(ours.path(), &local).unwrap().unwrap();
    let issued = authority.issue_for_host("localhost").unwrap();
    let server = PostgresServer::start_with_tls(&issued.cert, &issued.key);
    server.new_database("parallax_tls").await;
    let trusting = |ca: &std::path::Path| {
        server.tls_url(
            "parallax_tls",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )
    };
    let store = Store::connect(&trusting(&authority.ca_file)).await.unwrap();
    store
        .upsert_model(&summary("gear", "Gear", 1), ModelSource::Sample)
        .await
        .unwrap();
    store.close().await;
    // A server whose certificate another authority issued is refused, before anything is sent.
    let other = tempfile::tempdir().unwrap();
    let stranger = Tls::open(other.path(), &local).unwrap().unwrap();
    let refused = Store::connect(&trusting(&stranger.ca_file)).await;
    assert!(
        refused.is_err(),
        "a server the given CA did not issue was trusted"
    );
}

fn summary(id: &str, name: &str, triangles: u64) -> ModelSummary {
    ModelSummary {
        id: ModelId::new(id),
        name: name.into(),
        triangles,
    }
}

fn upload(id: &str, account: &str, content: &str, status: ModelStatus) -> ModelRecord {
    ModelRecord {
        summary: summary(id, &format!("{id}.step"), 0),
        source: ModelSource::Upload,
        file_name: Some(format!("{id}.step")),
        format: Some("step".into()),
        size_bytes: Some(1234),
        uploaded_by: Some(account.into()),
        content_id: Some(content.into()),
        status,
    }
}

async fn catalog(store: Store) {
    store
        .upsert_model(&summary("gear", "Gear", 100), ModelSource::Sample)
        .await
        .unwrap();
    store
        .upsert_model(&summary("bracket", "Bracket", 200), ModelSource::Sample)
        .await
        .unwrap();
    // A second upsert refreshes the name and size, not the place in the catalog.
    store
        .upsert_model(&summary("gear", "Spur gear", 120), ModelSource::Sample)
        .await
        .unwrap();
    let gear = store.model(&ModelId::new("gear")).await.unwrap().unwrap();
    assert_eq!(
        (gear.summary.name.as_str(), gear.summary.triangles),
        ("Spur gear", 120)
    );
    assert_eq!(gear.source, ModelSource::Sample);
    assert_eq!(gear.status, ModelStatus::Ready);
    assert!(
        store
            .model(&ModelId::new("nothing"))
            .await
            .unwrap()
            .is_none()
    );
    let ids: Vec<_> = store
        .model_records("anyone")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.summary.id.as_str().to_string())
        .collect();
    assert_eq!(ids, ["gear", "bracket"], "in the order they were added");
}

async fn uploads(store: Store) {
    let converting = upload("alice-1", "alice", "content-1", ModelStatus::Converting);
    assert!(store.insert_upload(&converting).await.unwrap());
    assert!(
        !store.insert_upload(&converting).await.unwrap(),
        "the same id twice is stored once"
    );
    let ready = upload("bob-1", "bob", "content-1", ModelStatus::Ready);
    assert!(store.insert_upload(&ready).await.unwrap());
    // Each account sees its own uploads only.
    let alices: Vec<_> = store.model_records("alice").await.unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].summary.id.as_str(), "alice-1");
    assert_eq!(alices[0].size_bytes, Some(1234));
    assert_eq!(alices[0].content_id.as_deref(), Some("content-1"));
    let waiting: Vec<_> = store.converting_models().await.unwrap();
    assert_eq!(waiting.len(), 1);
    store
        .finish_conversion(
            &ModelId::new("alice-1"),
            &ModelStatus::Failed("the kernel crashed".into()),
            0,
        )
        .await
        .unwrap();
    let failed = store
        .model(&ModelId::new("alice-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.status,
        ModelStatus::Failed("the kernel crashed".into())
    );
    assert!(store.converting_models().await.unwrap().is_empty());
    store
        .finish_conversion(&ModelId::new("bob-1"), &ModelStatus::Ready, 5000)
        .await
        .unwrap();
    assert_eq!(
        store
            .model(&ModelId::new("bob-1"))
            .await
            .unwrap()
            .unwrap()
            .summary
            .triangles,
        5000
    );
    // The files stay while any upload is made of them.
    assert!(store.delete_upload(&ModelId::new("alice-1")).await.unwrap());
    assert!(!store.delete_upload(&ModelId::new("alice-1")).await.unwrap());
    assert!(store.content_in_use("content-1").await.unwrap());
    assert!(store.delete_upload(&ModelId::new("bob-1")).await.unwrap());
    assert!(!store.content_in_use("content-1").await.unwrap());
}

fn conversion(account: &str, id: &str, at: u64) -> StoredConversion {
    StoredConversion {
        account: account.into(),
        id: id.into(),
        settings: format!("{{\"id\":\"{id}\"}}"),
        status: "NotStarted".into(),
        error: None,
        model: None,
        output_uri: None,
        created_at: Timestamp(at),
    }
}

async fn conversions(store: Store) {
    let first = conversion("alice", "c1", 1000);
    let (created, stored) = store.insert_conversion(&first).await.unwrap();
    assert!(created);
    assert_eq!(stored, first);
    // A second create of the same id changes nothing and answers the one stored.
    let again = StoredConversion {
        settings: "{}".into(),
        ..first.clone()
    };
    let (created, stored) = store.insert_conversion(&again).await.unwrap();
    assert!(!created);
    assert_eq!(stored, first);
    for (id, at) in [("c3", 3000), ("c2", 2000)] {
        store
            .insert_conversion(&conversion("alice", id, at))
            .await
            .unwrap();
    }
    store
        .insert_conversion(&conversion("bob", "c1", 500))
        .await
        .unwrap();
    let page = |skip, limit| {
        let store = store.clone();
        async move {
            store
                .conversions("alice", skip, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0, 2).await, ["c1", "c2"], "oldest first");
    assert_eq!(page(2, 2).await, ["c3"]);
    let done = StoredConversion {
        status: "Succeeded".into(),
        model: Some(ModelId::new("alice-model")),
        output_uri: Some("file:///storage/out/c1.parallax-mesh".into()),
        ..first.clone()
    };
    store.update_conversion(&done).await.unwrap();
    let failed = StoredConversion {
        status: "Failed".into(),
        error: Some(("InvalidInput".into(), "not a STEP file".into())),
        ..conversion("alice", "c2", 2000)
    };
    store.update_conversion(&failed).await.unwrap();
    assert_eq!(store.conversion("alice", "c1").await.unwrap(), Some(done));
    assert_eq!(store.conversion("alice", "c2").await.unwrap(), Some(failed));
    assert_eq!(store.conversion("carol", "c1").await.unwrap(), None);
    let unfinished: Vec<_> = store
        .unfinished_conversions()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.account, c.id))
        .collect();
    assert_eq!(
        unfinished,
        [("bob".into(), "c1".into()), ("alice".into(), "c3".into())]
    );
}

fn events(seqs: std::ops::RangeInclusive<u64>, change: u64) -> Vec<LoggedEvent> {
    seqs.map(|seq| LoggedEvent {
        seq,
        change,
        event: format!("{{\"kind\":\"tap\",\"n\":{seq}}}"),
    })
    .collect()
}

/// Writes space `name` as a replica does: row locked, body and events in one transaction.
async fn write_logged(store: &Store, name: &str, new: bool, seq: u64, logged: &[LoggedEvent]) {
    let mut transaction = store.begin().await.unwrap();
    let row = store
        .lock_space(&mut transaction, name, None)
        .await
        .unwrap();
    assert_eq!(matches!(row, LockedSpace::Gone), new);
    store
        .write_space(
            &mut transaction,
            &SpaceWrite {
                name,
                body: &format!("{{\"seq\":{seq}}}"),
                change: ChangeNumber(seq),
                seq,
                poll_at: Some(Timestamp::from_millis(1_000 + seq)),
                version: seq,
                new,
                events: logged,
            },
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

async fn space_log(store: Store) {
    write_logged(&store, "hall", true, 2, &events(1..=2, 1)).await;
    // A second space of the name is refused by the database: two replicas made it at once.
    let mut transaction = store.begin().await.unwrap();
    let taken = store
        .write_space(
            &mut transaction,
            &SpaceWrite {
                name: "hall",
                body: "{}",
                change: ChangeNumber(1),
                seq: 0,
                poll_at: None,
                version: 1,
                new: true,
                events: &[],
            },
        )
        .await
        .unwrap_err();
    assert!(
        taken
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{taken}"
    );
    drop(transaction);
    write_logged(&store, "hall", false, 5, &events(3..=5, 2)).await;
    let lock = |known| {
        let store = store.clone();
        async move {
            let mut transaction = store.begin().await.unwrap();
            store
                .lock_space(&mut transaction, "hall", known)
                .await
                .unwrap()
        }
    };
    let LockedSpace::Read(row) = lock(None).await else {
        panic!("a replica without a copy reads the row");
    };
    assert_eq!(
        (row.body.as_str(), row.seq, row.change, row.version),
        ("{\"seq\":5}", 5, ChangeNumber(5), 5)
    );
    // A replica whose copy is the row's version does not read the body again; an older copy does.
    assert!(matches!(
        lock(Some(5)).await,
        LockedSpace::Unchanged { seq: 5 }
    ));
    assert!(matches!(lock(Some(4)).await, LockedSpace::Read(_)));
    assert!(matches!(
        store
            .lock_space(&mut store.begin().await.unwrap(), "nowhere", Some(1))
            .await
            .unwrap(),
        LockedSpace::Gone
    ));
    // Exactly the events asked for, in order, with the change each was written at.
    let read = store.space_events("hall", 1, 4).await.unwrap();
    let numbers: Vec<(u64, u64)> = read.iter().map(|e| (e.seq, e.change)).collect();
    assert_eq!(numbers, [(2, 1), (3, 2), (4, 2)]);
    assert_eq!(read[1], events(3..=3, 2)[0]);
    assert_eq!(store.space_seqs().await.unwrap(), [("hall".to_string(), 5)]);
    // Timeouts due: by the time the last write stored.
    assert!(
        store
            .spaces_due(Timestamp::from_millis(1_004))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .spaces_due(Timestamp::from_millis(1_005))
            .await
            .unwrap(),
        ["hall"]
    );
    // The log keeps the last events, not all.
    let many = 5 + SPACE_LOG_KEPT + 64;
    write_logged(&store, "hall", false, many, &events(6..=many, 3)).await;
    let kept = store.space_events("hall", 0, many).await.unwrap();
    assert!(kept.len() as u64 >= SPACE_LOG_KEPT, "{}", kept.len());
    assert!((kept.len() as u64) < many, "older events go");
    assert_eq!(kept.last().unwrap().seq, many);
    // Who holds which member: rows of their own, written with a version and no body.
    let holder = |member: &str, replica: &str, connection| SpaceHolder {
        member: member.into(),
        replica: replica.into(),
        connection,
    };
    let mut transaction = store.begin().await.unwrap();
    let held = [
        ("m1".to_string(), Some(holder("m1", "r1", 7))),
        ("m2".to_string(), Some(holder("m2", "r2", 1 << 40))),
    ];
    store
        .write_holders(&mut transaction, "hall", Some(many + 1), &held)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(
        matches!(lock(Some(many)).await, LockedSpace::Read(_)),
        "a holder bumps the version"
    );
    assert_eq!(store.spaces_held_by("r2").await.unwrap(), ["hall"]);
    let moved = [
        ("m2".to_string(), Some(holder("m2", "r1", 8))),
        ("m1".to_string(), None),
    ];
    let mut transaction = store.begin().await.unwrap();
    store
        .write_holders(&mut transaction, "hall", None, &moved)
        .await
        .unwrap();
    let now: Vec<SpaceHolder> = store.space_holders(&mut transaction, "hall").await.unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(now, [holder("m2", "r1", 8)]);
    assert!(store.spaces_held_by("r2").await.unwrap().is_empty());
    assert_eq!(
        store.all_space_holders().await.unwrap(),
        [("hall".to_string(), holder("m2", "r1", 8))]
    );
    // Deleting the space deletes its log.
    let mut transaction = store.begin().await.unwrap();
    store
        .delete_space_in(&mut transaction, "hall")
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(
        store
            .space_events("hall", 0, many)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.spaces().await.unwrap().is_empty());
    assert!(store.all_space_holders().await.unwrap().is_empty());
}

async fn replicas(store: Store) {
    let seen = |id: &'static str, ms: u64| {
        let store = store.clone();
        async move {
            store
                .replica_seen(id, Timestamp::from_millis(ms))
                .await
                .unwrap()
        }
    };
    // The first heartbeat registers; later ones find the row.
    assert!(!seen("a", 1_000).await);
    assert!(!seen("b", 1_000).await);
    assert!(seen("a", 9_000).await);
    let before = Timestamp::from_millis(5_000);
    assert_eq!(store.silent_replicas(before).await.unwrap(), ["b"]);
    store.forget_replica("b").await.unwrap();
    assert!(store.silent_replicas(before).await.unwrap().is_empty());
    let later = Timestamp::from_millis(10_000);
    assert_eq!(store.silent_replicas(later).await.unwrap(), ["a"]);
    // A replica the others forgot finds out at its next heartbeat.
    assert!(!seen("b", 11_000).await);
}

async fn spaces(store: Store) {
    let templates: Vec<_> = store
        .space_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(templates, ["default", "large", "private", "review"]);
    store
        .upsert_space("lobby", "{\"body\":1}", ChangeNumber(1))
        .await
        .unwrap();
    store
        .update_space_properties("lobby", "{\"selectedModel\":\"gear\"}", ChangeNumber(2))
        .await
        .unwrap();
    store
        .update_space_properties("lobby", "{\"selectedModel\":\"shaft\"}", ChangeNumber(3))
        .await
        .unwrap();
    let stored = store.spaces().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body, "{\"body\":1}");
    assert_eq!(
        stored[0].properties.as_deref(),
        Some("{\"selectedModel\":\"shaft\"}")
    );
    assert_eq!(stored[0].change, ChangeNumber(3));
    // A whole write holds the properties itself: the older row goes.
    store
        .upsert_space("lobby", "{\"body\":2}", ChangeNumber(4))
        .await
        .unwrap();
    let stored = store.spaces().await.unwrap();
    assert_eq!(
        (
            stored[0].body.as_str(),
            stored[0].properties.as_deref(),
            stored[0].change
        ),
        ("{\"body\":2}", None, ChangeNumber(4))
    );
    // Change numbers beyond 32 bits.
    store
        .update_space_properties("lobby", "{}", ChangeNumber(1 << 40))
        .await
        .unwrap();
    assert_eq!(
        store.spaces().await.unwrap()[0].change,
        ChangeNumber(1 << 40)
    );
    store.delete_space("lobby").await.unwrap();
    assert!(store.spaces().await.unwrap().is_empty());
    // Its properties went with it: writing the space again starts clean.
    store
        .upsert_space("lobby", "{\"body\":3}", ChangeNumber(5))
        .await
        .unwrap();
    assert_eq!(store.spaces().await.unwrap()[0].properties, None);
}

async fn accounts(store: Store) {
    store
        .insert_account("a2", "Workshop", "hash-2")
        .await
        .unwrap();
    store
        .insert_account("a1", "Showroom", "hash-1")
        .await
        .unwrap();
    assert!(
        store.insert_account("a1", "Again", "hash").await.is_err(),
        "ids are unique"
    );
    let a1 = store.account("a1").await.unwrap().unwrap();
    assert_eq!(
        (a1.name.as_str(), a1.key_hash.as_str()),
        ("Showroom", "hash-1")
    );
    assert_eq!(
        a1.created_at.len(),
        "2026-12-01 10:00:00".len(),
        "{}",
        a1.created_at
    );
    assert_eq!((a1.key_rotated_at, a1.revoked_at), (None, None));
    assert!(store.account("a3").await.unwrap().is_none());

    assert!(
        store
            .set_account_key("a1", "hash-1b", Timestamp(10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_account_key("a3", "hash", Timestamp(10))
            .await
            .unwrap()
    );
    let a1 = store.account("a1").await.unwrap().unwrap();
    assert_eq!(
        (a1.key_hash.as_str(), a1.key_rotated_at),
        ("hash-1b", Some(Timestamp(10)))
    );

    assert!(store.revoke_account("a1", Timestamp(20)).await.unwrap());
    assert!(store.revoke_account("a1", Timestamp(30)).await.unwrap());
    assert!(!store.revoke_account("a3", Timestamp(30)).await.unwrap());
    let a1 = store.account("a1").await.unwrap().unwrap();
    assert_eq!(
        a1.revoked_at,
        Some(Timestamp(20)),
        "the first revocation counts"
    );
    assert!(
        !store
            .set_account_key("a1", "hash-1c", Timestamp(40))
            .await
            .unwrap(),
        "a revoked account gets no new key"
    );
    assert_eq!(store.revoked_accounts().await.unwrap(), ["a1"]);
    let listed: Vec<_> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["a2", "a1"], "in the order they were created");
}

async fn settings(store: Store) {
    // Concurrent first calls agree on one value.
    let calls = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .setting_or_insert("secret", &format!("value-{n}"))
                .await
                .unwrap()
        })
    });
    let mut values = Vec::new();
    for call in calls {
        values.push(call.await.unwrap());
    }
    values.dedup();
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(
        store.setting_or_insert("secret", "other").await.unwrap(),
        values[0]
    );
}

async fn render_sessions(store: Store) {
    store
        .insert_account("acct", "Showroom", "hash")
        .await
        .unwrap();
    let key = |id: &str| SessionKey::new("acct", SessionId::parse(id).unwrap());
    let mut live = RenderSession::new(
        SessionId::parse("live").unwrap(),
        "acct",
        SessionSize::Standard,
        60,
        Timestamp(1_000),
    );
    store.upsert_render_session(&live).await.unwrap();
    live.status = SessionStatus::Ready;
    live.host = Some(HostId::new("standard-1"));
    live.ready_at = Some(Timestamp(2_000));
    store.upsert_render_session(&live).await.unwrap();
    let premium = RenderSession::new(
        SessionId::parse("big").unwrap(),
        "acct",
        SessionSize::Premium,
        1440,
        Timestamp(u64::from(u32::MAX) * 1000),
    );
    store.upsert_render_session(&premium).await.unwrap();
    let mut stored = store.render_sessions().await.unwrap();
    stored.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(stored, [premium.clone(), live.clone()]);
    // A session of no account is refused, and nothing stored changes.
    let stray = RenderSession::new(
        SessionId::parse("stray").unwrap(),
        "nobody",
        SessionSize::Standard,
        60,
        Timestamp(1),
    );
    assert!(store.upsert_render_session(&stray).await.is_err());
    store.delete_render_session(&key("big")).await.unwrap();
    assert_eq!(store.render_sessions().await.unwrap(), [live]);
}

async fn shared_pool(store: Store) {
    store
        .insert_account("acct", "Showroom", "hash")
        .await
        .unwrap();
    // No replica has stored the pool yet.
    let mut transaction = store.begin().await.unwrap();
    assert_eq!(
        store.lock_render_pool(&mut transaction).await.unwrap(),
        None
    );
    store
        .write_render_pool(&mut transaction, r#"{"hosts":{}}"#)
        .await
        .unwrap();
    // Only the Starting and Ready sessions come with it, and any other read in the same
    // transaction.
    let session = |id: &str, status: SessionStatus, ended: Option<u64>| RenderSession {
        status,
        ended_at: ended.map(Timestamp),
        ..RenderSession::new(
            SessionId::parse(id).unwrap(),
            "acct",
            SessionSize::Standard,
            60,
            Timestamp(1_000),
        )
    };
    let waiting = session("waiting", SessionStatus::Starting, None);
    let ready = session("ready", SessionStatus::Ready, None);
    let old = session("old", SessionStatus::Stopped, Some(2_000));
    let recent = session("recent", SessionStatus::Expired, Some(9_000));
    for s in [&waiting, &ready, &old, &recent] {
        store
            .upsert_render_session_in(&mut transaction, s)
            .await
            .unwrap();
    }
    let mut active = store
        .active_render_sessions(&mut transaction)
        .await
        .unwrap();
    active.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(active, [ready.clone(), waiting.clone()]);
    let key = old.key();
    assert_eq!(
        store
            .render_session_in(&mut transaction, &key)
            .await
            .unwrap(),
        Some(old.clone())
    );
    // Host links: one per host, moved by a later link, vouched for per replica.
    let link = |id: &str, replica: &str, seen: u64| StoredHostLink {
        id: id.into(),
        replica: replica.into(),
        size: SessionSize::Standard,
        endpoint: format!("ws://10.0.0.7:{}", 4000 + seen),
        adapter: "llvmpipe".into(),
        pid: 42,
        device: false,
        seen: Timestamp(seen),
    };
    store
        .link_render_host(&mut transaction, &link("standard-1", "r1", 1))
        .await
        .unwrap();
    store
        .link_render_host(&mut transaction, &link("standard-2", "r1", 1))
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    // What was committed is what the next replica reads.
    assert_eq!(
        store.render_pool().await.unwrap().as_deref(),
        Some(r#"{"hosts":{}}"#)
    );
    assert_eq!(
        store.render_session(&ready.key()).await.unwrap(),
        Some(ready.clone())
    );
    let mut transaction = store.begin().await.unwrap();
    store
        .link_render_host(&mut transaction, &link("standard-2", "r2", 5))
        .await
        .unwrap();
    // A replica that no longer holds the link cannot forget it.
    assert!(
        !store
            .unlink_render_host(&mut transaction, "standard-2", Some("r1"))
            .await
            .unwrap()
    );
    transaction.commit().await.unwrap();
    store.touch_render_hosts("r2", Timestamp(8)).await.unwrap();
    store.set_host_device("standard-2", true).await.unwrap();
    let moved = store.render_host("standard-2").await.unwrap().unwrap();
    assert_eq!(
        moved,
        StoredHostLink {
            device: true,
            seen: Timestamp(8),
            ..link("standard-2", "r2", 5)
        }
    );
    assert_eq!(
        store.unheard_render_hosts(Timestamp(6)).await.unwrap(),
        ["standard-1"]
    );
    let mut transaction = store.begin().await.unwrap();
    assert!(
        store
            .unlink_render_host(&mut transaction, "standard-1", None)
            .await
            .unwrap()
    );
    transaction.commit().await.unwrap();
    let ids: Vec<String> = store
        .render_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, ["standard-2"]);
    // Ended sessions go after their retention, the rest stay.
    assert_eq!(
        store.purge_render_sessions(Timestamp(5_000)).await.unwrap(),
        1
    );
    let mut left: Vec<String> = store
        .account_render_sessions(Some("acct"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["ready", "recent", "waiting"]);
    assert_eq!(store.account_render_sessions(None).await.unwrap().len(), 3);
}
