//! Arms the `fail` failpoints of a failpoints build (see
//! `backstop_common::failpoints`): `FAILPOINTS=name=actions;…` at start, then the file
//! named by `BACKSTOP_FAILPOINTS_FILE` (same format, one or more lines), re-read every
//! 100 ms so a chaos harness can arm and disarm points in a running process. A build
//! without the feature ignores both.

use std::collections::BTreeMap;
use std::time::Duration;

use backstop_common::failpoints::{enabled, fail};

/// Parses `name=actions` entries separated by `;` or newlines.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.split([';', '\n'])
        .filter_map(|e| {
            let (name, actions) = e.trim().split_once('=')?;
            Some((name.trim().to_string(), actions.trim().to_string()))
        })
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

/// Applies `want` over `have`: points no longer named are turned off.
fn apply(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) {
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        fail::remove(name);
    }
    for (name, actions) in want.iter().filter(|(n, a)| have.get(*n) != Some(a)) {
        match fail::cfg(name.clone(), actions) {
            Ok(()) => tracing::warn!(failpoint = %name, %actions, "failpoint armed"),
            Err(e) => tracing::error!(failpoint = %name, %actions, error = %e, "bad failpoint"),
        }
    }
}

/// Arms `FAILPOINTS` and starts watching `BACKSTOP_FAILPOINTS_FILE`, in failpoints
/// builds only.
pub fn arm() {
    if !enabled() {
        return;
    }
    let mut have = BTreeMap::new();
    if let Ok(env) = std::env::var("FAILPOINTS") {
        let want = parse(&env);
        apply(&have, &want);
        have = want;
    }
    let Some(path) = std::env::var_os("BACKSTOP_FAILPOINTS_FILE") else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("failpoints".into())
        .spawn(move || {
            loop {
                let want = std::fs::read_to_string(&path)
                    .map(|t| parse(&t))
                    .unwrap_or_default();
                if want != have {
                    apply(&have, &want);
                    have = want;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not watch the failpoints file");
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_entries() {
        let m = parse("a::b=1*return(crash); c=sleep(10)\n\n=x\nbad");
        assert_eq!(m.len(), 2);
        assert_eq!(m["a::b"], "1*return(crash)");
        assert_eq!(m["c"], "sleep(10)");
    }
}
