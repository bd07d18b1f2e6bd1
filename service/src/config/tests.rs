//! The configuration's layering, validation and messages.

use super::*;
use crate::error::{Domain, Retry};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(
        &path,
        "state_dir = \"/tmp/a\"\nclock = \"event\"\n[kafka]\nbrokers = \"k1:9092\"\ntopics = [\"t1\"]\n\
         [kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&path),
        env(&[("MON_KAFKA__BROKERS", "k2:9092"), ("MON_KAFKA__TOPICS", "a, b"), ("OTHER", "x")]),
        &Overrides { state_dir: Some("/tmp/b".into()), ..Default::default() },
    )
    .unwrap();
    let kafka = config.kafka.unwrap();
    assert_eq!(kafka.brokers, "k2:9092");
    assert_eq!(kafka.topics, vec!["a", "b"]);
    assert_eq!(kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
    assert_eq!(config.state_dir, PathBuf::from("/tmp/b"));
    assert_eq!(config.clock, ClockMode::Event);
}

#[test]
fn kafka_properties_may_be_numbers_in_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(
        &path,
        "[kafka]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\n[kafka.properties]\n\"linger.ms\" = 5\n\"enable.idempotence\" = false\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&path),
        env(&[("MON_KAFKA__PROPERTIES__TOPIC.METADATA.REFRESH.INTERVAL.MS", "1000")]),
        &Overrides::default(),
    )
    .unwrap();
    let properties = config.kafka.unwrap().properties;
    assert_eq!(properties.get("linger.ms").map(String::as_str), Some("5"));
    assert_eq!(properties.get("enable.idempotence").map(String::as_str), Some("false"));
    assert_eq!(properties.get("topic.metadata.refresh.interval.ms").map(String::as_str), Some("1000"));
}

#[test]
fn a_misspelled_key_gets_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    let load_file = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err().to_string()
    };
    let error = load_file("clok = \"wall\"\n");
    assert!(error.contains("unknown key `clok`") && error.contains("did you mean `clock`?"), "{error}");
    assert!(error.contains("mon.toml"), "{error}");
    let error = load_file("[kafka]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\nrecord_topic = \"r\"\n");
    assert!(error.contains("did you mean `kafka.records_topic`?"), "{error}");
    let error = load_file("[engine]\nmax_batch_wait = 5\n");
    assert!(error.contains("did you mean `engine.max_batch_wait_ms`?"), "{error}");
    let error = load_file("clock = \"evnt\"\n");
    assert!(error.contains("clock: unknown value `evnt`") && error.contains("did you mean `event`?"), "{error}");
    let error = load_file("zebra = 1\n");
    assert!(error.contains("unknown key `zebra`") && error.contains("`state_dir`"), "{error}");

    let load_env =
        |pairs: &[(&str, &str)]| Config::load(None, env(pairs), &Overrides::default()).unwrap_err().to_string();
    let error = load_env(&[("MON_CLOK", "event")]);
    assert!(error.contains("unknown variable MON_CLOK; did you mean MON_CLOCK?"), "{error}");
    let error = load_env(&[("MON_KAFKA__BROKRES", "k:9092"), ("MON_KAFKA__TOPICS", "t")]);
    assert!(error.contains("unknown variable MON_KAFKA__BROKRES; did you mean MON_KAFKA__BROKERS?"), "{error}");
}

#[test]
fn the_alerts_section_sets_the_book_and_the_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(
        &path,
        "[alerts]\ngroup_wait_ms = 100\ngroup_interval_ms = 2000\n[alerts.delivery]\nmax_in_flight_per_channel = 2\n",
    )
    .unwrap();
    let config =
        Config::load(Some(&path), env(&[("MON_ALERTS__DELIVERY__RETRY_INITIAL_MS", "50")]), &Overrides::default())
            .unwrap();
    let book = config.alerts.book().unwrap();
    assert_eq!((book.group_wait_ms, book.group_interval_ms), (100, 2000));
    assert_eq!(config.alerts.delivery.max_in_flight_per_channel, 2);
    assert_eq!(config.alerts.delivery.retry_initial_ms, 50);
    assert_eq!(config.alerts.delivery.retry_max_ms, 300_000);

    std::fs::write(&path, "[alerts]\nenabled = false\n[alerts.delivery]\nretry_jitter = 1.5\n").unwrap();
    let error = Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("alerts.delivery.retry_jitter"), "{error}");
    std::fs::write(&path, "[alerts]\ngroup_wait = \"30s\"\n").unwrap();
    let error = Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("did you mean `alerts.group_wait_ms`?"), "{error}");
}

#[test]
fn notification_settings_from_the_file_and_the_environment() {
    use crate::notify::config::SmtpTls;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(
        &path,
        "[notify]\npublic_url = \"https://mon.example.com\"\n[notify.smtp]\nhost = \"smtp.example.com\"\n\
         from = \"mon@example.com\"\n[notify.http]\ntimeout_ms = 2500\n\
         [secrets]\nPAGERDUTY_ROUTING_KEY = \"pd-value\"\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&path),
        env(&[
            ("MON_NOTIFY__SMTP__HOST", "127.0.0.1"),
            ("MON_NOTIFY__SMTP__PORT", "2525"),
            ("MON_NOTIFY__SMTP__TLS", "none"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let smtp = config.notify.smtp.as_ref().unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls), ("127.0.0.1", 2525, SmtpTls::None));
    assert_eq!(smtp.from, "mon@example.com");
    assert_eq!(config.notify.http.timeout_ms, 2500);
    assert_eq!(config.notify.pagerduty.url, "https://events.pagerduty.com/v2/enqueue");
    assert_eq!(config.secrets.get("PAGERDUTY_ROUTING_KEY").map(|s| s.expose()), Some("pd-value"));
    // A secret never shows in the configuration's Debug form.
    assert!(!format!("{config:?}").contains("pd-value"));

    // Only the environment: the section is made, with its defaults.
    let config = Config::load(
        None,
        env(&[("MON_NOTIFY__SMTP__HOST", "127.0.0.1"), ("MON_NOTIFY__SMTP__FROM", "mon@example.com")]),
        &Overrides::default(),
    )
    .unwrap();
    let smtp = config.notify.smtp.unwrap();
    assert_eq!((smtp.port, smtp.tls), (25, SmtpTls::Starttls));

    let error = Config::load(None, env(&[("MON_NOTIFY__SMTP__TLS", "startls")]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("did you mean `starttls`?"), "{error}");
    let error =
        Config::load(None, env(&[("MON_NOTIFY__SMTP__HOTS", "h")]), &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("did you mean MON_NOTIFY__SMTP__HOST?"), "{error}");
}

#[test]
fn mistakes_are_named_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(&path, "clok = \"wall\"\n").unwrap();
    let error = Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let error = error.to_string();
    assert!(error.contains("clok"), "{error}");

    std::fs::write(&path, "clock = \"sundial\"\n").unwrap();
    let error = Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let error = error.to_string();
    assert!(error.contains("sundial") && error.contains("clock"), "{error}");

    std::fs::write(&path, "[http]\nlisten = \"everywhere\"\n[kafka]\nbrokers = \"\"\n").unwrap();
    let error = Config::load(Some(&path), vec![], &Overrides::default()).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let error = error.to_string();
    assert!(error.contains("http.listen") && error.contains("kafka.brokers") && error.contains("kafka.topics"));

    let error = Config::load(Some(&dir.path().join("missing.toml")), vec![], &Overrides::default()).unwrap_err();
    assert_eq!((error.domain, error.retry), (Domain::Config, Retry::Never));
    let error = error.to_string();
    assert!(error.contains("no configuration file"), "{error}");
}

#[test]
fn oidc_and_tls_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    std::fs::write(
        &path,
        "[auth]\nenabled = true\n[auth.oidc]\nissuer = \"https://idp.example.com\"\naudience = \"mon\"\n\
         jwks_url = \"https://idp.example.com/certs\"\n[auth.oidc.roles]\nsre = \"operator\"\n\
         [http.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
    )
    .unwrap();
    let vars = env(&[("MON_AUTH__OIDC__ROLE_CLAIM", "realm_access.roles"), ("MON_HTTP__TLS__KEY", "/etc/k.pem")]);
    let config = Config::load(Some(&path), vars, &Overrides::default()).unwrap();
    let oidc = config.auth.oidc.unwrap();
    assert_eq!((oidc.issuer.as_str(), oidc.audience.as_str()), ("https://idp.example.com", "mon"));
    assert_eq!(oidc.role_claim, "realm_access.roles");
    assert_eq!(oidc.roles.get("sre"), Some(&crate::auth::Role::Operator));
    assert_eq!((oidc.leeway_seconds, oidc.jwks_min_refetch_seconds), (60, 30));
    let tls = config.http.tls.unwrap();
    assert_eq!((tls.cert, tls.key), (PathBuf::from("c.pem"), PathBuf::from("/etc/k.pem")));

    // Only from the environment, and wrong three ways.
    let vars = env(&[
        ("MON_AUTH__OIDC__ISSUER", "https://idp.example.com"),
        ("MON_AUTH__OIDC__JWKS_URL", "http://idp.example.com/certs"),
        ("MON_AUTH__OIDC__ROLES__SRE", "superuser"),
    ]);
    let error = Config::load(None, vars.clone(), &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("superuser"), "{error}");
    let error = Config::load(None, vars[..2].to_vec(), &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("auth.enabled is false"), "{error}");
    assert!(error.contains("auth.oidc.audience: empty"), "{error}");
    assert!(error.contains("use https"), "{error}");
    let mut vars = vars[..2].to_vec();
    vars.extend(env(&[
        ("MON_AUTH__ENABLED", "true"),
        ("MON_AUTH__OIDC__AUDIENCE", "mon"),
        ("MON_AUTH__OIDC__JWKS_URL", "http://127.0.0.1:8081/certs"),
    ]));
    let config = Config::load(None, vars, &Overrides::default()).unwrap();
    assert_eq!(config.auth.oidc.unwrap().jwks_url, "http://127.0.0.1:8081/certs", "loopback may be plain http");
}

/// A configuration with a minimal `[kafka]` section and `extra` lines in it.
fn load_kafka(path: &std::path::Path, extra: &str) -> Result<Config, Error> {
    std::fs::write(path, format!("[kafka]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\n{extra}")).unwrap();
    Config::load(Some(path), vec![], &Overrides::default())
}

#[test]
fn the_changelog_is_on_with_kafka_named_after_the_group_and_can_be_renamed_or_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    let load = |extra: &str| load_kafka(&path, extra);
    let topic = |extra: &str| load(extra).unwrap().kafka.unwrap().changelog_topic();
    assert_eq!(topic(""), Some("mon.changelog".into()));
    assert_eq!(topic("group = \"desk\"\n"), Some("desk.changelog".into()));
    assert_eq!(topic("changelog_topic = \"state\"\n"), Some("state".into()));
    assert_eq!(topic("changelog = false\n"), None);
    let env = vec![("MON_KAFKA__CHANGELOG".to_string(), "false".to_string())];
    std::fs::write(&path, "[kafka]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\n").unwrap();
    let config = Config::load(Some(&path), env, &Overrides::default()).unwrap();
    assert_eq!(config.kafka.unwrap().changelog_topic(), None, "MON_KAFKA__CHANGELOG=false");
    let error = load("changelog_topic = \"mon.records\"\n").unwrap_err().to_string();
    assert!(error.contains("kafka.changelog_topic") && error.contains("one of its own"), "{error}");
    let error = load("changelog_topic = \"mon.members\"\n").unwrap_err().to_string();
    assert!(error.contains("one of its own"), "the group's members topic: {error}");
}

#[test]
fn failover_is_off_by_default_and_needs_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mon.toml");
    let load = |extra: &str| load_kafka(&path, extra);
    assert!(!load("").unwrap().kafka.unwrap().failover);
    assert!(load("failover = true\n").unwrap().kafka.unwrap().failover);
    let error = load("failover = true\nchangelog = false\n").unwrap_err().to_string();
    assert!(error.contains("kafka.failover") && error.contains("changelog"), "{error}");
    let error = load("changelog_topic = \"mon.lease\"\n").unwrap_err().to_string();
    assert!(error.contains("one of its own"), "the group's lease topic: {error}");
    // The flag.
    let overrides = Overrides {
        kafka: Some(KafkaOverrides { failover: Some(true), ..KafkaOverrides::default() }),
        ..Overrides::default()
    };
    std::fs::write(&path, "[kafka]\nbrokers = \"k:9092\"\ntopics = [\"t\"]\n").unwrap();
    assert!(Config::load(Some(&path), vec![], &overrides).unwrap().kafka.unwrap().failover, "--failover");
}
