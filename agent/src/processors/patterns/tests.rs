//! Redactor tests: each pattern's positives and negatives, overlaps, UTF-8 boundaries, the
//! fixed hash output for a fixed key, counts.

use proptest::prelude::*;

use super::*;

const KEY: &[u8] = b"sonde-test-key-0001";

fn redactor(patterns: &[Pattern]) -> Redactor {
    match Redactor::new(patterns, Action::Mask(DEFAULT_MASK.into())) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn builtin(b: Builtin) -> Redactor {
    redactor(&[Pattern::Builtin(b)])
}

fn all() -> Redactor {
    redactor(&Builtin::ALL.map(Pattern::Builtin))
}

fn run(r: &Redactor, input: &str) -> Option<String> {
    let mut counts = r.new_counts();
    r.redact(input, &mut counts)
}

#[test]
fn credit_cards_are_masked_only_when_luhn_and_brand_pass() {
    let r = builtin(Builtin::CreditCard);
    let positives = [
        ("card 4111111111111111 ok", "card **** ok"),
        ("4111 1111 1111 1111", "****"),
        ("pay 5555-5555-5555-4444.", "pay ****."),
        ("amex 378282246310005", "amex ****"),
        ("disc=6011111111111117", "disc=****"),
        ("13 digits 4123456789011", "13 digits ****"),
        ("mc2 2223000048410010", "mc2 ****"),
        ("(4012888888881881)", "(****)"),
    ];
    for (input, want) in positives {
        assert_eq!(run(&r, input).as_deref(), Some(want), "{input}");
    }
    let negatives = [
        "order 4111111111111112 shipped", // Luhn fails
        "order 8111111111111112 shipped", // Luhn passes, no card starts with 8
        "id 1234567812345670",            // Luhn passes, starts with 1
        "short 411111111111",             // 12 digits
        "long 41111111111111111111111",   // inside a longer digit run
        "ts 2024-01-15 12:30:45.123456",  // dates and times
        "4111_1111_1111_1111",            // underscores are not separators
        "x4111111111111111",              // glued to a letter
        "4111  1111 1111 1111",           // double space breaks the group
    ];
    for input in negatives {
        assert_eq!(run(&r, input), None, "{input}");
    }
}

#[test]
fn emails_are_found_in_text() {
    let r = builtin(Builtin::Email);
    let cases = [
        ("mail alice@example.com now", "mail **** now"),
        ("<Bob.Smith+tag@mail.example.co.uk>", "<****>"),
        ("end alice@example.com.", "end ****."),
        ("two a@b.io,c@d.io", "two ****,****"),
    ];
    for (input, want) in cases {
        assert_eq!(run(&r, input).as_deref(), Some(want), "{input}");
    }
    for input in [
        "no at sign",
        "user@localhost",
        "a@b.c",
        "@example.com",
        "x@.com",
    ] {
        assert_eq!(run(&r, input), None, "{input}");
    }
}

#[test]
fn ipv4_addresses_but_not_versions_or_big_octets() {
    let r = builtin(Builtin::Ipv4);
    let cases = [
        ("from 192.0.2.10 port", "from **** port"),
        ("10.0.0.1:8080", "****:8080"),
        ("peer=255.255.255.255,", "peer=****,"),
        ("0.0.0.0", "****"),
    ];
    for (input, want) in cases {
        assert_eq!(run(&r, input).as_deref(), Some(want), "{input}");
    }
    for input in [
        "v1.2.3.4.5",
        "1.2.3",
        "256.1.1.1",
        "1.2.3.256",
        "10.1.2.3.4",
        "a1.2.3.4",
        "1.2.3.4a",
    ] {
        assert_eq!(run(&r, input), None, "{input}");
    }
}

#[test]
fn ipv6_addresses_but_not_times_macs_or_paths() {
    let r = builtin(Builtin::Ipv6);
    let cases = [
        ("from ::1 port", "from **** port"),
        ("[2001:db8::8a2e:370:7334]:443", "[****]:443"),
        ("fe80::1%eth0", "****%eth0"),
        ("mapped ::ffff:192.0.2.1.", "mapped ****."),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", "full ****"),
    ];
    for (input, want) in cases {
        assert_eq!(run(&r, input).as_deref(), Some(want), "{input}");
    }
    for input in [
        "at 12:30:45",
        "mac 00:1a:2b:3c:4d:5e",
        "std::vector",
        "a :: b",
        "Foo::Bar::baz",
        "1:2:3",
    ] {
        assert_eq!(run(&r, input), None, "{input}");
    }
}

#[test]
fn jwts_with_eyj_headers() {
    let r = builtin(Builtin::Jwt);
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert_eq!(
        run(&r, &format!("Authorization: Bearer {jwt}")).as_deref(),
        Some("Authorization: Bearer ****")
    );
    assert_eq!(
        run(&r, "tok=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.;").as_deref(),
        Some("tok=****;")
    );
    for input in [
        "eyJhbGci.only-two",
        "abc.def.ghi",
        "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
    ] {
        assert_eq!(run(&r, input), None, "{input}");
    }
}

#[test]
fn custom_regexes_use_re2_syntax_and_their_names() {
    let r = redactor(&[
        Pattern::Custom {
            name: "ssn".into(),
            regex: r"\b\d{3}-\d{2}-\d{4}\b".into(),
        },
        Pattern::Custom {
            name: "api_key".into(),
            regex: r"(?i)api[_-]?key=\w+".into(),
        },
    ]);
    let mut counts = r.new_counts();
    let out = r.redact(
        "ssn 123-45-6789 and API_KEY=abc123 and 987-65-4321",
        &mut counts,
    );
    assert_eq!(out.as_deref(), Some("ssn **** and **** and ****"));
    assert_eq!((counts.get(0), counts.get(1), counts.total()), (2, 1, 3));
    assert_eq!(r.names().collect::<Vec<_>>(), vec!["ssn", "api_key"]);
}

#[test]
fn nothing_matched_returns_none_and_leaves_the_buffer() {
    let r = all();
    let mut counts = r.new_counts();
    let mut out = String::from("previous");
    // Candidates that fail validation also count as nothing matched.
    for input in [
        "",
        "GET /index.html 200 0.012s",
        "order 4111111111111112",
        "v1.2.3.4.5",
    ] {
        assert!(!r.redact_into(input, &mut out, &mut counts), "{input}");
        assert_eq!(out, "previous");
    }
    assert_eq!(counts.total(), 0);
}

#[test]
fn overlapping_candidates_leftmost_then_longest_wins() {
    let r = redactor(&[
        Pattern::Builtin(Builtin::Email),
        Pattern::Custom {
            name: "word".into(),
            regex: "example".into(),
        },
        Pattern::Custom {
            name: "digits".into(),
            regex: "[0-9]+".into(),
        },
    ]);
    let mut counts = r.new_counts();
    // The e-mail starts first and covers `example` and the digits inside it.
    let out = r.redact("to bob42@example.com and example 7", &mut counts);
    assert_eq!(out.as_deref(), Some("to **** and **** ****"));
    assert_eq!((counts.get(0), counts.get(1), counts.get(2)), (1, 1, 1));

    // Equal start: the longer one wins.
    let r = redactor(&[
        Pattern::Custom {
            name: "short".into(),
            regex: "abc".into(),
        },
        Pattern::Custom {
            name: "long".into(),
            regex: "abcdef".into(),
        },
    ]);
    let mut counts = r.new_counts();
    assert_eq!(r.redact("xabcdefx", &mut counts).as_deref(), Some("x****x"));
    assert_eq!((counts.get(0), counts.get(1)), (0, 1));
}

#[test]
fn utf8_neighbours_stay_intact() {
    let r = all();
    let cases = [
        ("é4111111111111111ü", "é****ü"),
        ("日本 alice@example.com 日本", "日本 **** 日本"),
        ("→192.0.2.1←", "→****←"),
        ("😀eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig😀", "😀****😀"),
    ];
    for (input, want) in cases {
        assert_eq!(run(&r, input).as_deref(), Some(want), "{input}");
    }
}

#[test]
fn zero_length_matches_are_ignored() {
    let r = redactor(&[Pattern::Custom {
        name: "maybe".into(),
        regex: "x*".into(),
    }]);
    assert_eq!(run(&r, "abc"), None);
    assert_eq!(run(&r, "axxb").as_deref(), Some("a****b"));
}

#[test]
fn hash_output_is_fixed_for_a_fixed_key() {
    // Expected values computed independently: Python's hmac.new(KEY, value, sha256).hexdigest()[:24].
    let r = match Redactor::new(
        &Builtin::ALL.map(Pattern::Builtin),
        Action::Hash(KEY.to_vec()),
    ) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut counts = r.new_counts();
    let cases = [
        ("u=alice@example.com", "u=15c541c12320884d4ac34261"),
        ("u=ALICE@Example.COM", "u=15c541c12320884d4ac34261"), // normalized to lowercase
        ("cc 4111111111111111", "cc cdf9391813c97ec37ba4cc52"),
        ("cc 4111-1111-1111-1111", "cc cdf9391813c97ec37ba4cc52"), // digits only
        ("ip 192.0.2.10", "ip 2d656ead40bb0e4b9a2d7a88"),
        (
            "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "t 1ca1d86383d6959e99d0d7cd",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            r.redact(input, &mut counts).as_deref(),
            Some(want),
            "{input}"
        );
    }
    // Another redactor with the same key agrees (no per-instance salt).
    let again = Redactor::new(
        &[Pattern::Builtin(Builtin::Email)],
        Action::Hash(KEY.to_vec()),
    );
    let again = match again {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut c2 = again.new_counts();
    assert_eq!(
        again.redact("alice@example.com", &mut c2).as_deref(),
        Some("15c541c12320884d4ac34261")
    );
    // A different key gives a different value.
    let other = Redactor::new(
        &[Pattern::Builtin(Builtin::Email)],
        Action::Hash(b"another-key-of-16+".to_vec()),
    );
    let other = match other {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_ne!(
        other.redact("alice@example.com", &mut c2).as_deref(),
        Some("15c541c12320884d4ac34261")
    );
}

#[test]
fn configuration_errors_are_typed() {
    let mask = || Action::Mask("#".into());
    assert_eq!(
        Redactor::new(&[], mask()).err(),
        Some(RedactError::NoPattern)
    );
    let bad = Redactor::new(
        &[Pattern::Custom {
            name: "bad".into(),
            regex: "(".into(),
        }],
        mask(),
    );
    assert!(matches!(bad, Err(RedactError::InvalidRegex { ref name, .. }) if name == "bad"));
    let dup = Redactor::new(
        &[
            Pattern::Builtin(Builtin::Email),
            Pattern::Builtin(Builtin::Email),
        ],
        mask(),
    );
    assert_eq!(dup.err(), Some(RedactError::DuplicateName("email".into())));
    let short = Redactor::new(
        &[Pattern::Builtin(Builtin::Email)],
        Action::Hash(b"short".to_vec()),
    );
    assert_eq!(short.err(), Some(RedactError::ShortKey(5)));
    assert_eq!(format!("{:?}", Action::Hash(KEY.to_vec())), "Hash(<key>)");
}

#[test]
fn configurable_mask_and_counts_accumulate() {
    let r = match Redactor::new(
        &[Pattern::Builtin(Builtin::Ipv4)],
        Action::Mask("[ip]".into()),
    ) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut counts = r.new_counts();
    assert_eq!(
        r.redact("1.1.1.1 2.2.2.2", &mut counts).as_deref(),
        Some("[ip] [ip]")
    );
    assert_eq!(r.redact("3.3.3.3", &mut counts).as_deref(), Some("[ip]"));
    assert_eq!(counts.get(0), 3);
    counts.clear();
    assert_eq!(counts.total(), 0);
}

proptest! {
    #[test]
    fn output_is_valid_and_unmatched_text_is_unchanged(s in "\\PC{0,200}") {
        let r = all();
        let mut counts = r.new_counts();
        match r.redact(&s, &mut counts) {
            None => prop_assert_eq!(counts.total(), 0),
            Some(out) => {
                prop_assert!(counts.total() > 0);
                prop_assert!(out.contains(DEFAULT_MASK));
                // Re-redacting the output finds nothing new (masks contain no candidates).
                let mut again = r.new_counts();
                prop_assert_eq!(r.redact(&out, &mut again), None, "{}", out);
            }
        }
    }

    #[test]
    fn embedded_valid_cards_are_always_masked(prefix in "[a-z ]{0,10}", suffix in "[a-z ]{0,10}", body in "4[0-9]{14}") {
        // Complete the Luhn check digit for a 16-digit Visa-like number.
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        let check = (0..10u8).find(|c| {
            let mut d = digits.clone();
            d.push(*c);
            super::builtins::luhn(&d)
        });
        prop_assume!(check.is_some());
        let card = format!("{body}{}", check.unwrap_or(0));
        let input = format!("{prefix} {card} {suffix}");
        let r = builtin(Builtin::CreditCard);
        prop_assert_eq!(run(&r, &input), Some(format!("{prefix} **** {suffix}")));
    }
}

#[test]
fn redactors_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Redactor>();
}
