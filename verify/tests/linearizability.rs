//! The linearizability checker against histories whose verdict is known: hand-written legal and
//! illegal ones, and randomized ones built from a real linearization (legal by construction),
//! then damaged (a read of a value never written is illegal by construction).

use std::time::Duration;

use skiff_verify::linearizability::{check, incremented, Input, Operation, Rendered, Verdict, CAS_ABORTED, CAS_OK};
use skiff_verify::rng::SimRng;

fn get(client: u64, key: &str, call: u64, ret: u64, value: &str) -> Operation {
    Operation { client, input: Input::Get { key: key.into() }, call, ret: Some(ret), output: Some(value.into()) }
}

fn put(client: u64, key: &str, value: &str, call: u64, ret: u64) -> Operation {
    let input = Input::Put { key: key.into(), value: value.into() };
    Operation { client, input, call, ret: Some(ret), output: Some(String::new()) }
}

fn append(client: u64, key: &str, value: &str, call: u64, ret: Option<u64>) -> Operation {
    let input = Input::Append { key: key.into(), value: value.into() };
    Operation { client, input, call, ret, output: ret.map(|_| String::new()) }
}

fn verdict(h: &[Operation]) -> Verdict {
    check(h, Some(Duration::from_secs(10)))
}

#[test]
fn sequential_and_overlapping_histories_that_are_legal() {
    let h = vec![
        put(1, "x", "1", 0, 10),
        get(2, "x", 20, 30, "1"),
        append(1, "x", "2", 40, Some(50)),
        get(2, "x", 60, 70, "12"),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // A read concurrent with a write may see either value, and touching intervals overlap.
    for seen in ["", "a"] {
        let h = vec![put(1, "x", "a", 0, 10), get(2, "x", 10, 20, seen)];
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen:?}");
    }
    // Keys are independent.
    let h = vec![put(1, "x", "1", 0, 10), put(1, "y", "2", 20, 30), get(2, "x", 40, 50, "1"), get(2, "y", 40, 50, "2")];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn stale_and_inconsistent_reads_are_illegal() {
    let stale = vec![put(1, "x", "1", 0, 10), put(1, "x", "2", 20, 30), get(2, "x", 40, 50, "1")];
    match verdict(&stale) {
        Verdict::Illegal { key, history } => {
            assert_eq!(key, "x");
            assert_eq!(history.len(), 3);
            assert!(Rendered(&history).to_string().contains("get(\"x\") -> \"1\""));
        }
        v => panic!("a stale read passed: {v:?}"),
    }
    // Two readers see two concurrent appends in opposite orders.
    let h = vec![
        append(1, "x", "a", 0, Some(100)),
        append(2, "x", "b", 0, Some(100)),
        get(3, "x", 110, 120, "ab"),
        get(4, "x", 130, 140, "ba"),
    ];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
    // A value read back then lost.
    let h = vec![put(1, "x", "1", 0, 10), get(2, "x", 20, 30, "1"), get(3, "x", 40, 50, "")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
}

#[test]
fn an_unknown_outcome_may_or_may_not_have_taken_effect() {
    for seen in ["", "z"] {
        let h = vec![append(1, "x", "z", 0, None), get(2, "x", 50, 60, seen)];
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen:?}");
    }
    // But not before its call.
    let h = vec![get(2, "x", 0, 10, "z"), append(1, "x", "z", 20, None)];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
}

#[test]
fn many_unknown_outcomes_nobody_read_are_decided_at_once() {
    // Forty in-doubt appends overlapping everything: a search over their orders and subsets
    // would never end; none of them was read, so none can matter.
    let mut h: Vec<Operation> = (0..40).map(|c| append(10 + c, "x", &format!("[{c}]"), 5, None)).collect();
    h.push(append(1, "x", "a", 0, Some(10)));
    h.push(get(2, "x", 20, 30, "a"));
    h.push(append(3, "x", "b", 40, Some(50)));
    h.push(get(4, "x", 60, 70, "ab"));
    let budget = Some(Duration::from_secs(5));
    assert_eq!(check(&h, budget), Verdict::Linearizable);
    // One that was read must have taken effect in its place.
    h.push(get(5, "x", 80, 90, "ab[7]"));
    assert_eq!(check(&h, budget), Verdict::Linearizable);
    // And a stale read among them is still caught.
    h.push(get(6, "x", 100, 110, "a"));
    assert!(matches!(check(&h, budget), Verdict::Illegal { .. }));
}

/// A random history of `clients` clients on `keys` keys, each operation linearized at a random
/// point of its interval, outputs computed in that order: linearizable by construction.
fn random_history(rng: &mut SimRng, clients: u64, keys: usize, ops_per_client: usize) -> Vec<Operation> {
    struct Pending {
        op: Operation,
        point: u64,
    }
    let mut pending = Vec::new();
    for client in 0..clients {
        let mut t = rng.between(0, 20);
        for n in 0..ops_per_client {
            let key = format!("k{}", rng.below(keys));
            let call = t;
            let ret = call + rng.between(1, 40);
            let point = rng.between(call, ret);
            let input = match rng.below(7) {
                0 | 1 => Input::Get { key },
                2 => Input::Put { key, value: format!("{client}.{n}") },
                3 => Input::Append { key, value: format!("[{client}.{n}]") },
                4 => Input::Del { key },
                5 => Input::Incr { key },
                // Its expected value is the one at its point, or another (then it aborts).
                _ => Input::Cas { key, expect: (rng.below(4) == 0).to_string(), new: format!("<{client}.{n}>") },
            };
            let unknown = rng.chance(0.05);
            let op = Operation { client, input, call, ret: (!unknown).then_some(ret), output: None };
            pending.push(Pending { op, point });
            t = ret + rng.between(0, 10);
        }
    }
    pending.sort_by_key(|p| p.point);
    let mut state = std::collections::BTreeMap::<String, String>::new();
    pending
        .into_iter()
        .map(|mut p| {
            let known = p.op.ret.is_some();
            if let Input::Cas { key, expect, .. } = &mut p.op.input {
                let now = state.get(key).cloned().unwrap_or_default();
                *expect = if expect == "false" { now } else { format!("{now}?") };
            }
            let out = match &p.op.input {
                Input::Get { key } => state.get(key).cloned().unwrap_or_default(),
                Input::Put { key, value } => {
                    state.insert(key.clone(), value.clone());
                    String::new()
                }
                Input::Append { key, value } => {
                    state.entry(key.clone()).or_default().push_str(value);
                    String::new()
                }
                Input::Del { key } => {
                    state.remove(key);
                    String::new()
                }
                Input::Incr { key } => match incremented(state.get(key).map_or("", String::as_str)) {
                    Some(next) => {
                        state.insert(key.clone(), next.clone());
                        next
                    }
                    None => "error".into(),
                },
                Input::Cas { key, expect, new } => {
                    if state.get(key).map_or("", String::as_str) == expect {
                        state.insert(key.clone(), new.clone());
                        CAS_OK.into()
                    } else {
                        CAS_ABORTED.into()
                    }
                }
            };
            p.op.output = known.then_some(out);
            p.op
        })
        .collect()
}

#[test]
fn randomized_linearizable_histories_pass_and_a_damaged_read_fails() {
    for seed in 0..200 {
        let mut rng = SimRng::new(seed);
        let mut h = random_history(&mut rng, 1 + seed % 6, 1 + (seed % 3) as usize, 12);
        assert_eq!(verdict(&h), Verdict::Linearizable, "seed {seed}");
        // A read returning something never written cannot be linearized.
        let reads: Vec<usize> =
            (0..h.len()).filter(|&k| matches!(h[k].input, Input::Get { .. }) && h[k].output.is_some()).collect();
        if let Some(&k) = reads.get(rng.below(reads.len().max(1))) {
            h[k].output = Some("never written".into());
            assert!(matches!(verdict(&h), Verdict::Illegal { .. }), "seed {seed}: damaged read passed");
        }
    }
}

fn op(client: u64, input: Input, call: u64, ret: Option<u64>, output: &str) -> Operation {
    Operation { client, input, call, ret, output: ret.map(|_| output.to_string()) }
}

fn cas(client: u64, expect: &str, new: &str, call: u64, ret: Option<u64>, output: &str) -> Operation {
    op(client, Input::Cas { key: "x".into(), expect: expect.into(), new: new.into() }, call, ret, output)
}

#[test]
fn deletes_increments_and_compare_and_sets_follow_their_model() {
    let incr = |c, call, ret, out: &str| op(c, Input::Incr { key: "x".into() }, call, Some(ret), out);
    let del = |c, call, ret| op(c, Input::Del { key: "x".into() }, call, Some(ret), "");
    // Concurrent increments answer 1 and 2, in either order; then a read sees 2.
    let h = vec![incr(1, 0, 10, "2"), incr(2, 0, 10, "1"), get(3, "x", 20, 30, "2")];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // Both answering 1 is a lost update.
    let h = vec![incr(1, 0, 10, "1"), incr(2, 0, 10, "1")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
    // An increment of a value that is no integer fails and changes nothing.
    let h = vec![put(1, "x", "a", 0, 10), incr(1, 20, 30, "error"), get(1, "x", 40, 50, "a")];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let h = vec![put(1, "x", "a", 0, 10), incr(1, 20, 30, "1")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
    // A read after a delete sees nothing.
    let h = vec![put(1, "x", "a", 0, 10), del(1, 20, 30), get(2, "x", 40, 50, "")];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let h = vec![put(1, "x", "a", 0, 10), del(1, 20, 30), get(2, "x", 40, 50, "a")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
    // Two watched updates from the same value cannot both succeed; an abort may happen
    // whatever the value.
    let h = vec![put(1, "x", "a", 0, 10), cas(1, "a", "ab", 20, Some(40), "ok"), cas(2, "a", "ac", 20, Some(40), "ok")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
    let h = vec![
        put(1, "x", "a", 0, 10),
        cas(1, "a", "ab", 20, Some(40), "ok"),
        cas(2, "a", "ac", 20, Some(40), "aborted"),
        get(3, "x", 50, 60, "ab"),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // One whose outcome is unknown may have applied, or not.
    for seen in ["a", "ab"] {
        let h = vec![put(1, "x", "a", 0, 10), cas(1, "a", "ab", 20, None, ""), get(3, "x", 50, 60, seen)];
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen}");
    }
    // A success that did not find its expected value is illegal.
    let h = vec![put(1, "x", "z", 0, 10), cas(1, "a", "ab", 20, Some(40), "ok")];
    assert!(matches!(verdict(&h), Verdict::Illegal { .. }));
}
