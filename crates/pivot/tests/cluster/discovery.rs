//! Discovery from one seed finds the whole topology with the right facts.

use crate::support::*;
use pivot_drill::TestSandbox;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn discovery_from_one_seed_finds_primary_and_replicas() {
    let sb = TestSandbox::up(3, false).await;
    exec(&sb, "node1", &["CREATE TABLE test.t (id INT PRIMARY KEY)", "INSERT INTO test.t VALUES (1), (2)"]).await;
    // Let both replicas apply the two transactions.
    let mut primary = sb.admin("node1").await.unwrap();
    let pos = primary.rows(&pivot_dialect::Sql::plain("SELECT @@gtid_binlog_pos AS p")).await.unwrap()[0]["p"]
        .clone()
        .unwrap();
    for n in ["node2", "node3"] {
        exec(&sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    }
    // Seed with the last replica only: the primary comes from its replica
    // status, the other replica from the primary's SHOW SLAVE HOSTS.
    let (config, _) = write_config(&sb, ConfigOptions { seeds: vec![key_of(&sb, "node3")], ..Default::default() });
    let out = run_pivot(&["status", "--json", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &all[0];
    assert_eq!(c["code"], "healthy", "{c:#}");
    assert_eq!(c["primary"], key_of(&sb, "node1"));
    assert_eq!(c["instances"].as_array().unwrap().len(), 3);
    let p = instance(c, &key_of(&sb, "node1")).unwrap();
    assert_eq!(p["role"], "primary");
    assert_eq!(p["state"]["read_only"], false);
    assert_eq!(p["state"]["version"]["flavor"], "mariadb");
    assert_eq!(p["state"]["version"]["major"], 10);
    assert_eq!(p["state"]["gtid"]["applied"]["set"], pos);
    for n in ["node2", "node3"] {
        let r = instance(c, &key_of(&sb, n)).unwrap();
        assert_eq!(r["role"], "replica", "{n}");
        assert_eq!(r["source"], key_of(&sb, "node1"), "{n}");
        assert_eq!(r["state"]["read_only"], true, "{n}");
        assert_eq!(r["state"]["replication"]["io_thread"], "running", "{n}");
        assert_eq!(r["state"]["replication"]["sql_running"], true, "{n}");
        assert_eq!(r["state"]["gtid"]["applied"]["set"], pos, "{n}");
        assert_eq!(r["state"]["replication"]["heartbeat_period_ms"], 250, "{n}");
    }

    let text = run_pivot(&["status", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("cluster sandbox: healthy"), "{text}");
    assert!(
        text.contains(&format!("├─ {}", key_of(&sb, "node2")))
            && text.contains(&format!("└─ {}", key_of(&sb, "node3"))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_and_unreachable_hosts_are_explained() {
    let sb = TestSandbox::up(1, false).await;
    let closed = free_port();
    let (config, _) = write_config(
        &sb,
        ConfigOptions { seeds: vec![key_of(&sb, "node1"), format!("127.0.0.1:{closed}")], ..Default::default() },
    );
    let text =
        std::fs::read_to_string(&config).unwrap().replace("password_file = \"", "password_file = \"/nonexistent");
    let bad_file = sb.dir.join("bad-password-file.toml");
    std::fs::write(&bad_file, text).unwrap();
    let out = run_pivot(&["status", "--config", bad_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-password-file.toml:13:") && err.contains("cannot be read"), "{err}");

    let wrong = sb.dir.join("wrong.password");
    std::fs::write(&wrong, "not-the-password").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("{}/secrets/pivot.password", sb.dir.display()), &wrong.display().to_string());
    std::fs::write(&config, text).unwrap();
    let out = run_pivot(&["status", "--json", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "a cluster pivot cannot see needs attention");
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node1 = instance(&all[0], &key_of(&sb, "node1")).unwrap();
    assert_eq!(node1["reachable"], false);
    assert_eq!(node1["failure"]["kind"], "access_denied", "{node1:#}");
    assert!(node1["failure"]["message"].as_str().unwrap().contains("Access denied"), "{node1:#}");
    let closed = instance(&all[0], &format!("127.0.0.1:{closed}")).unwrap();
    assert_eq!(closed["failure"]["kind"], "refused", "{closed:#}");
    assert!(closed["problems"][0].as_str().unwrap().starts_with("unreachable:"), "{closed:#}");
}
