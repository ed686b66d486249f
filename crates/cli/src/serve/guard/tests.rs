//! The host, origin and token rules, one `check` per area.

use super::*;

fn guard(listen: &str, hosts: &[&str], origins: &[&str], token: Option<&str>) -> Guard {
    let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
    let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
    Guard::new(listen.parse().unwrap(), &hosts, &origins, token)
}

fn check_hosts(guard: &Guard, cases: &[(&str, bool)]) {
    for (host, expected) in cases {
        assert_eq!(guard.host_allowed(host), *expected, "host {host:?}");
    }
}

#[test]
fn by_default_a_loopback_gateway_accepts_its_own_names_only() {
    let g = guard("127.0.0.1:7878", &[], &[], None);
    check_hosts(
        &g,
        &[
            ("127.0.0.1:7878", true),
            ("localhost:7878", true),
            ("LOCALHOST:7878", true),
            ("localhost:7879", false),
            ("localhost", false),
            ("evil.example:7878", false),
            ("127.0.0.2:7878", false),
            ("", false),
        ],
    );
    let g = guard("[::1]:9000", &[], &[], None);
    check_hosts(
        &g,
        &[
            ("[::1]:9000", true),
            ("localhost:9000", true),
            ("[::2]:9000", false),
        ],
    );
}

#[test]
fn an_unspecified_address_accepts_address_literals_but_no_dns_name() {
    let g = guard("0.0.0.0:8080", &[], &[], None);
    check_hosts(
        &g,
        &[
            ("10.1.2.3:8080", true),
            ("[fe80::1]:8080", true),
            ("localhost:8080", true),
            ("10.1.2.3:18080", true),
            ("localhost:18080", true),
            ("rebind.attacker.example:8080", false),
            ("rebind.attacker.example", false),
        ],
    );
}

#[test]
fn configured_hosts_add_to_the_default_and_may_omit_the_port() {
    let g = guard(
        "127.0.0.1:7878",
        &["api.internal", "gw.example:443"],
        &[],
        None,
    );
    check_hosts(
        &g,
        &[
            ("api.internal", true),
            ("api.internal:1234", true),
            ("gw.example:443", true),
            ("gw.example", false),
            ("127.0.0.1:7878", true),
            ("other.example:7878", false),
        ],
    );
    check_hosts(
        &guard("127.0.0.1:1", &["*"], &[], None),
        &[("anything:9", true)],
    );
}

#[test]
fn origins_pass_when_listed_or_served_by_an_allowed_host() {
    let g = guard("127.0.0.1:7878", &[], &["https://app.example.com"], None);
    for (origin, expected) in [
        ("https://app.example.com", true),
        ("https://APP.example.com/", true),
        ("http://localhost:7878", true),
        ("http://127.0.0.1:7878", true),
        ("https://evil.example", false),
        ("http://localhost:3000", false),
        ("null", false),
    ] {
        assert_eq!(g.origin_allowed(origin), expected, "origin {origin:?}");
    }
}

#[test]
fn the_token_is_checked_whatever_the_case_of_the_scheme() {
    let g = guard("127.0.0.1:1", &[], &[], Some("s3cret"));
    for (value, expected) in [
        ("Bearer s3cret", true),
        ("bearer s3cret", true),
        ("BEARER  s3cret ", true),
        ("Bearer s3cre", false),
        ("Bearer s3cret2", false),
        ("Basic s3cret", false),
        ("s3cret", false),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(g.authorized(&headers), expected, "{value:?}");
    }
    assert!(!g.authorized(&HeaderMap::new()));
    assert!(guard("127.0.0.1:1", &[], &[], None).authorized(&HeaderMap::new()));
}
