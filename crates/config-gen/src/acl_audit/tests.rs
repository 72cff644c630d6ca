//! [`audit`] on `ACL LIST` replies captured from Debian's redis-server 7.0.15 loaded with the
//! generated files (password hashes of the test password `x`), then changed with `ACL SETUSER`.

use super::*;

const H: &str = "#2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";

/// `ACL LIST` of the generated single-node file (namespace `ai_cache`), as Redis 7.0 prints it:
/// users sorted, keys before channels, commands reordered, `resetkeys` and `nocommands` dropped.
fn single_node() -> Vec<String> {
    [
        "user cache_admin on {H} ~* &* +@all",
        "user cache_app on {H} ~ai_cache:* resetchannels &sealcache:l1:ai_cache -@all +publish +select +subscribe +set +unsubscribe +echo +ping +scan +acl|whoami +unlink +pexpire +del +get +pttl +client|setname +client|getname +exists +ttl +hello",
        "user cache_health on {H} resetchannels -@all +ping",
        "user cache_monitor on {H} resetchannels -@all +ping +acl|list +acl|whoami +acl|log +info +hello",
        "user default off resetchannels -@all",
    ]
    .iter()
    .map(|l| l.replace("{H}", H))
    .collect()
}

/// `ACL LIST` of the generated cluster file.
fn cluster() -> Vec<String> {
    [
        "user cache_admin on {H} ~* &* +@all",
        "user cache_app on {H} ~ai_cache:* resetchannels &sealcache:l1:ai_cache -@all +echo +set +unlink +cluster|info +cluster|slots +cluster|shards +pttl +ttl +client|getname +client|setname +exists +publish +readonly +pexpire +get +ping +select +scan +acl|whoami +unsubscribe +hello +subscribe +del +asking",
        "user cache_health on {H} resetchannels -@all +cluster|info +ping",
        "user cache_monitor on {H} resetchannels -@all +cluster|info +info +ping +acl|whoami +acl|log +acl|list +hello",
        "user cache_replication on {H} resetchannels -@all +psync +ping +replconf",
        "user default off resetchannels -@all",
    ]
    .iter()
    .map(|l| l.replace("{H}", H))
    .collect()
}

/// `lines` with the line of `user` replaced by `line` (or added).
fn with(mut lines: Vec<String>, user: &str, line: &str) -> Vec<String> {
    let line = line.replace("{H}", H);
    match lines
        .iter()
        .position(|l| l.starts_with(&format!("user {user} ")))
    {
        Some(i) => lines[i] = line,
        None => lines.push(line),
    }
    lines
}

fn single(lines: &[String]) -> AclAudit {
    audit(lines, "ai_cache", TopologyKind::SingleNode)
}

#[test]
fn the_generated_acl_as_redis_prints_it_matches() {
    let a = single(&single_node());
    assert_eq!(a.deviations, vec![], "{a:?}");
    assert_eq!(a.default_user_disabled, Some(true));
    assert_eq!(a.users, 5);
    let c = audit(&cluster(), "ai_cache", TopologyKind::Cluster);
    assert!(c.matches(), "{c:?}");
}

#[test]
fn the_audit_follows_the_generator_and_its_topology() {
    // The cluster reply against the single-node grants: cluster commands and the replication
    // user are beyond it.
    let a = single(&cluster());
    assert!(a.deviations.contains(&AclDeviation::ExtraUser {
        user: "cache_replication".into(),
        enabled: true
    }));
    assert!(a.deviations.iter().any(|d| matches!(d,
        AclDeviation::WiderRights { user, beyond } if user == "cache_app" && beyond.contains(&"+cluster|slots".to_owned()))));
    // Another namespace: its key pattern and channel are not this one's.
    let other = audit(&single_node(), "other", TopologyKind::SingleNode);
    let app = other
        .deviations
        .iter()
        .find_map(|d| match d {
            AclDeviation::WiderRights { user, beyond } if user == "cache_app" => Some(beyond),
            _ => None,
        })
        .unwrap();
    assert_eq!(app, &["~ai_cache:*", "&sealcache:l1:ai_cache"]);
    // The single-node reply against the cluster grants: fewer rights, and a missing user.
    let fewer = audit(&single_node(), "ai_cache", TopologyKind::Cluster);
    assert_eq!(
        fewer.deviations,
        vec![AclDeviation::MissingUser {
            user: "cache_replication".into()
        }]
    );
}

#[test]
fn an_extra_nopass_user_is_found() {
    // ACL SETUSER intruder on nopass +@all ~*
    let a = single(&with(
        single_node(),
        "intruder",
        "user intruder on nopass ~* resetchannels +@all",
    ));
    assert_eq!(
        a.deviations,
        vec![
            AclDeviation::Nopass {
                user: "intruder".into()
            },
            AclDeviation::ExtraUser {
                user: "intruder".into(),
                enabled: true
            }
        ]
    );
    assert!(
        a.deviations
            .iter()
            .all(|d| d.weakens() && d.is_about_users())
    );
    // A disabled extra user without rights needs attention but exposes nothing.
    let off = single(&with(
        single_node(),
        "r3",
        "user r3 off resetchannels -@all",
    ));
    assert_eq!(
        off.deviations,
        vec![AclDeviation::ExtraUser {
            user: "r3".into(),
            enabled: false
        }]
    );
    assert!(!off.deviations[0].weakens());
}

#[test]
fn the_default_user_on_is_found_with_or_without_a_password() {
    // ACL SETUSER default on >somepassword
    let a = single(&with(
        single_node(),
        "default",
        "user default on #42a9798b99d4afcec9995e47a1d246b98ebc96be7a732323eee39d924006ee1d resetchannels -@all",
    ));
    assert_eq!(a.deviations, vec![AclDeviation::DefaultUserEnabled]);
    assert_eq!(a.default_user_disabled, Some(false));
    let open = single(&with(
        single_node(),
        "default",
        "user default on nopass ~* &* +@all",
    ));
    assert!(open.deviations.contains(&AclDeviation::DefaultUserEnabled));
    assert!(open.deviations.contains(&AclDeviation::Nopass {
        user: "default".into()
    }));
    assert!(open.deviations.iter().any(|d| matches!(d,
        AclDeviation::WiderRights { user, beyond } if user == "default" && beyond == &["+@all", "~*", "&*"])));
}

fn beyond_of(lines: &[String], user: &str) -> Vec<String> {
    single(lines)
        .deviations
        .into_iter()
        .find_map(|d| match d {
            AclDeviation::WiderRights { user: u, beyond } if u == user => Some(beyond),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn wider_rights_of_generated_users_are_found() {
    // ACL SETUSER cache_app +@all
    let all = with(
        single_node(),
        "cache_app",
        "user cache_app on {H} ~ai_cache:* resetchannels &sealcache:l1:ai_cache +@all",
    );
    assert_eq!(beyond_of(&all, "cache_app"), ["+@all"]);
    // ACL SETUSER cache_app %R~other:* &*
    let keys = with(
        single_node(),
        "cache_app",
        "user cache_app on {H} ~ai_cache:* %R~other:* &* -@all +publish +select +subscribe +set +unsubscribe +echo +ping +scan +acl|whoami +unlink +pexpire +del +get +pttl +client|setname +client|getname +exists +ttl +hello",
    );
    assert_eq!(beyond_of(&keys, "cache_app"), ["%R~other:*", "&*"]);
    // ACL SETUSER cache_monitor +config|get (what the generator refuses to grant).
    let config = with(
        single_node(),
        "cache_monitor",
        "user cache_monitor on {H} resetchannels -@all +config|get +ping +acl|list +acl|whoami +acl|log +info +hello",
    );
    assert_eq!(beyond_of(&config, "cache_monitor"), ["+config|get"]);
    // ACL SETUSER cache_health +@dangerous -@dangerous +debug
    let debug = with(
        single_node(),
        "cache_health",
        "user cache_health on {H} resetchannels -@all +ping +debug",
    );
    assert_eq!(beyond_of(&debug, "cache_health"), ["+debug"]);
    // ACL SETUSER cache_health (~foo:* +get): a selector.
    let selector = with(
        single_node(),
        "cache_health",
        "user cache_health on {H} resetchannels -@all +cluster|info +ping (~foo:* resetchannels -@all +get)",
    );
    assert_eq!(
        beyond_of(&selector, "cache_health"),
        ["+cluster|info", "(~foo:* resetchannels -@all +get)"]
    );
    // ACL SETUSER cache_monitor allkeys allchannels
    let patterns = with(
        single_node(),
        "cache_monitor",
        "user cache_monitor on {H} ~* &* -@all +info +ping +acl|whoami +acl|log +acl|list +hello",
    );
    assert_eq!(beyond_of(&patterns, "cache_monitor"), ["~*", "&*"]);
    // A category, a whole command where a subcommand is granted, and skip-sanitize-payload.
    let cat = with(
        single_node(),
        "cache_monitor",
        "user cache_monitor on skip-sanitize-payload {H} resetchannels -@all +@read +acl +info",
    );
    assert_eq!(
        beyond_of(&cat, "cache_monitor"),
        ["+@read", "+acl", "skip-sanitize-payload"]
    );
}

#[test]
fn fewer_rights_and_reordering_are_no_deviation() {
    // A reset user (off, no commands), commands removed, a read-only key pattern, sanitize-payload.
    let lines = with(
        with(
            single_node(),
            "cache_app",
            "user cache_app off sanitize-payload resetchannels -@all",
        ),
        "cache_health",
        "user cache_health on {H} %R~ai_cache:* resetchannels -@all",
    );
    let a = single(&lines);
    assert_eq!(
        a.deviations,
        vec![AclDeviation::WiderRights {
            user: "cache_health".into(),
            beyond: vec!["%R~ai_cache:*".into()]
        }],
        "cache_health has no key pattern at all in its grant"
    );
    let app_fewer = with(
        single_node(),
        "cache_app",
        "user cache_app on {H} %R~ai_cache:* resetchannels -@all +get -get +ping +select|0",
    );
    assert!(single(&app_fewer).matches(), "{:?}", single(&app_fewer));
    // Rules applied in order: `+@all` then `-@all` leaves nothing.
    let reset = with(
        single_node(),
        "cache_health",
        "user cache_health on {H} resetchannels +@all -@all +ping",
    );
    assert!(single(&reset).matches());
}

#[test]
fn cache_admin_holds_everything_by_design_but_not_nopass() {
    let selector = with(
        single_node(),
        "cache_admin",
        "user cache_admin on {H} ~* &* +@all (~x +get)",
    );
    assert!(single(&selector).matches());
    let nopass = with(
        single_node(),
        "cache_admin",
        "user cache_admin on nopass ~* &* +@all",
    );
    assert_eq!(
        single(&nopass).deviations,
        vec![AclDeviation::Nopass {
            user: "cache_admin".into()
        }]
    );
}

#[test]
fn unknown_rules_and_lines_are_reported_without_secrets() {
    let lines = with(
        with(
            single_node(),
            "cache_health",
            "user cache_health on {H} resetchannels -@all +ping future-flag",
        ),
        "cache_app",
        "garbage",
    );
    let a = single(&lines);
    assert!(a.deviations.contains(&AclDeviation::UnknownRule {
        user: "cache_health".into(),
        rule: "future-flag".into()
    }));
    assert!(a.deviations.contains(&AclDeviation::UnreadableLine));
    assert!(a.deviations.contains(&AclDeviation::MissingUser {
        user: "cache_app".into()
    }));
    assert!(a.deviations.iter().all(|d| !d.weakens()));
    let text = format!("{a:?}");
    assert!(!text.contains(&H[1..]), "no password hash in {text}");
    let shown: Vec<String> = a.deviations.iter().map(ToString::to_string).collect();
    assert!(shown.iter().all(|s| !s.contains(&H[1..])));
    // A hostile user name is shortened and made printable.
    let long = format!("user {}\u{7} on nopass", "n".repeat(200));
    let a = single(&with(single_node(), "x", &long));
    let AclDeviation::Nopass { user } = &a.deviations[0] else {
        panic!("{a:?}")
    };
    assert_eq!(user.len(), MAX_QUOTED);
    let bell = single(&with(single_node(), "x", "user a\u{7}b on nopass"));
    assert_eq!(
        bell.deviations[0],
        AclDeviation::Nopass { user: "a?b".into() }
    );
}

#[test]
fn selectors_are_one_token() {
    assert_eq!(
        tokens("on #ab (~a +get) (%R~b +@read) ~c"),
        ["on", "#ab", "(~a +get)", "(%R~b +@read)", "~c"]
    );
    assert_eq!(tokens("(+get)"), ["(+get)"]);
}

#[test]
fn a_third_password_on_a_generated_user_is_found() {
    // A rotation in progress: two passwords, no deviation.
    let two = with(
        single_node(),
        "cache_admin",
        "user cache_admin on {H} #aa ~* &* +@all",
    );
    assert_eq!(
        single(&two).deviations,
        vec![],
        "two passwords are a rotation"
    );
    // One more than any rotation leaves: a way in nobody generated.
    let three = with(
        single_node(),
        "cache_app",
        "user cache_app on {H} #aa #bb ~ai_cache:* resetchannels &sealcache:l1:ai_cache -@all +get",
    );
    let a = single(&three);
    assert!(
        a.deviations.contains(&AclDeviation::ExtraPasswords {
            user: "cache_app".to_owned(),
            count: 3
        }),
        "{a:?}"
    );
    assert!(a.deviations.iter().all(|d| !d.to_string().contains("#aa")));
}
