//! A fresh data dir opened by several processes at once — `parallax serve` started while
//! `parallax account create` runs, as a setup script does — opens in all of them.

use parallax_tests::data_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_data_dir_opened_at_once_by_several_opens_in_all() {
    for round in 0..3 {
        let dir = data_dir();
        let path = dir.path().join("data");
        let opening: Vec<_> = (0..6)
            .map(|i| {
                let data = parallax_server::config::DataDir {
                    path: path.clone(),
                    database_url: None,
                };
                tokio::spawn(async move {
                    parallax_server::create_account(&data, &format!("account {i}")).await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for opened in opening {
            let account = opened
                .await
                .expect("the task ran")
                .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            ids.push(account.id);
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "six accounts, each stored");
    }
}
