//! Random coroutine graphs checked against a reference model computed by plain recursion.
//!
//! A graph is a DAG of nodes; node `i` only waits on nodes after it. Each node runs a list of
//! steps (pauses, zero sleeps, gathers of children, children started in the background) and
//! returns its value plus the outputs of the children it gathered. A child with one parent edge
//! is a plain coroutine; one with several is shared (diamonds). At most one node fails, at a
//! random step. The loop must give the model's result, or the failing node's error; every node
//! must run at most once (exactly once if reachable and nothing failed); and every coroutine must
//! be dropped exactly once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use tinyio::{Coro, ErrorGroup, Loop, Shared, background, sleep};

#[derive(Clone, Debug)]
enum StepSpec {
    Pause,
    Sleep0,
    /// Gathers these children (node indices).
    Await(Vec<usize>),
    /// Starts these children in the background.
    Background(Vec<usize>),
}

#[derive(Clone, Debug)]
struct NodeSpec {
    value: u64,
    steps: Vec<StepSpec>,
    /// Fails with `Boom(index)` before the step at this position (possibly after the last).
    fail_at: Option<usize>,
}

#[derive(Clone, Debug)]
struct Graph {
    nodes: Vec<NodeSpec>,
    mode: ErrorGroup,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("node {0} failed")]
struct Boom(usize);

/// A raw step: child choices are mapped to later nodes once the graph's size is known.
#[derive(Clone, Debug)]
enum RawStep {
    Pause,
    Sleep0,
    Await(Vec<u8>),
    Background(Vec<u8>),
}

fn raw_step() -> impl Strategy<Value = RawStep> {
    let children = || prop::collection::vec(any::<u8>(), 0..4);
    prop_oneof![
        2 => Just(RawStep::Pause),
        1 => Just(RawStep::Sleep0),
        4 => children().prop_map(RawStep::Await),
        1 => children().prop_map(RawStep::Background),
    ]
}

fn graph() -> impl Strategy<Value = Graph> {
    let node = (0u64..1000, prop::collection::vec(raw_step(), 0..5));
    let mode =
        prop_oneof![Just(ErrorGroup::Auto), Just(ErrorGroup::Never), Just(ErrorGroup::Always)];
    (prop::collection::vec(node, 1..13), prop::option::of((any::<u8>(), any::<u8>())), mode)
        .prop_map(|(raw, failure, mode)| {
            let n = raw.len();
            let child = |i: usize, c: u8| i + 1 + usize::from(c) % (n - i - 1);
            let mut nodes: Vec<NodeSpec> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (value, steps))| {
                    let steps = steps
                        .into_iter()
                        .filter_map(|step| match step {
                            RawStep::Pause => Some(StepSpec::Pause),
                            RawStep::Sleep0 => Some(StepSpec::Sleep0),
                            // The last node has no later node to wait on.
                            RawStep::Await(_) | RawStep::Background(_) if i + 1 == n => None,
                            RawStep::Await(cs) => {
                                Some(StepSpec::Await(cs.into_iter().map(|c| child(i, c)).collect()))
                            }
                            RawStep::Background(cs) => Some(StepSpec::Background(
                                cs.into_iter().map(|c| child(i, c)).collect(),
                            )),
                        })
                        .collect();
                    NodeSpec { value, steps, fail_at: None }
                })
                .collect();
            if let Some((who, when)) = failure {
                let node = &mut nodes[usize::from(who) % n];
                node.fail_at = Some(usize::from(when) % (node.steps.len() + 1));
            }
            Graph { nodes, mode }
        })
}

/// What the loop must produce, by plain recursion.
fn model(graph: &Graph) -> (Result<u64, usize>, Vec<bool>) {
    fn value(graph: &Graph, i: usize) -> u64 {
        let node = &graph.nodes[i];
        let mut total = node.value;
        for step in &node.steps {
            if let StepSpec::Await(children) = step {
                for &c in children {
                    total = total.wrapping_add(value(graph, c));
                }
            }
        }
        total
    }
    fn visit(graph: &Graph, i: usize, reachable: &mut Vec<bool>) {
        if std::mem::replace(&mut reachable[i], true) {
            return;
        }
        for step in &graph.nodes[i].steps {
            if let StepSpec::Await(children) | StepSpec::Background(children) = step {
                for &c in children {
                    visit(graph, c, reachable);
                }
            }
        }
    }
    let mut reachable = vec![false; graph.nodes.len()];
    visit(graph, 0, &mut reachable);
    let failing =
        (0..graph.nodes.len()).find(|&i| reachable[i] && graph.nodes[i].fail_at.is_some());
    let result = match failing {
        Some(i) => Err(i),
        None => Ok(value(graph, 0)),
    };
    (result, reachable)
}

/// What the coroutines record.
#[derive(Default)]
struct Record {
    runs: RefCell<Vec<u32>>,
    live: Cell<usize>,
    created: Cell<usize>,
}

/// Alive from the making of a coroutine to the dropping of its body.
struct Live(Rc<Record>);

impl Live {
    fn new(record: &Rc<Record>) -> Self {
        record.live.set(record.live.get() + 1);
        record.created.set(record.created.get() + 1);
        Live(record.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.set(self.0.live.get() - 1);
    }
}

enum Child {
    Plain(Coro<u64>),
    Shared(Shared<u64>),
}

enum Action {
    Pause,
    Sleep0,
    Await(Vec<Coro<u64>>, Vec<Shared<u64>>),
    Background(Vec<Coro<u64>>, Vec<Shared<u64>>),
    Fail(usize),
}

#[tinyio::coroutine]
fn node(id: usize, value: u64, actions: Vec<Action>, live: Live) -> u64 {
    let _live = live;
    _live.0.runs.borrow_mut()[id] += 1;
    let mut total = value;
    for action in actions {
        match action {
            Action::Pause => yield_!(),
            Action::Sleep0 => yield_!(sleep(Duration::ZERO)),
            Action::Await(plain, shared) => {
                let (a, b) = yield_!((plain, shared));
                for x in a.into_iter().chain(b) {
                    total = total.wrapping_add(x);
                }
            }
            Action::Background(plain, shared) => yield_!(background((plain, shared))),
            Action::Fail(id) => Err(Boom(id))?,
        }
    }
    total
}

/// Builds the coroutines of `graph`, last node first. Returns the root and the nodes nobody
/// refers to (to drop after the run).
fn build(graph: &Graph, record: &Rc<Record>) -> (Coro<u64>, Vec<Child>) {
    let n = graph.nodes.len();
    let mut refs = vec![0usize; n];
    for node in &graph.nodes {
        for step in &node.steps {
            if let StepSpec::Await(cs) | StepSpec::Background(cs) = step {
                for &c in cs {
                    refs[c] += 1;
                }
            }
        }
    }
    let mut handles: Vec<Option<Child>> = (0..n).map(|_| None).collect();
    for i in (0..n).rev() {
        let spec = &graph.nodes[i];
        let mut take = |cs: &[usize]| {
            let (mut plain, mut shared) = (Vec::new(), Vec::new());
            for &c in cs {
                match handles[c].as_ref().expect("built before its parents") {
                    Child::Plain(_) => match handles[c].take() {
                        Some(Child::Plain(coro)) => plain.push(coro),
                        _ => unreachable!(),
                    },
                    Child::Shared(s) => shared.push(s.clone()),
                }
            }
            (plain, shared)
        };
        let mut actions = Vec::new();
        for (k, step) in spec.steps.iter().enumerate() {
            if spec.fail_at == Some(k) {
                actions.push(Action::Fail(i));
            }
            actions.push(match step {
                StepSpec::Pause => Action::Pause,
                StepSpec::Sleep0 => Action::Sleep0,
                StepSpec::Await(cs) => {
                    let (p, s) = take(cs);
                    Action::Await(p, s)
                }
                StepSpec::Background(cs) => {
                    let (p, s) = take(cs);
                    Action::Background(p, s)
                }
            });
        }
        if spec.fail_at == Some(spec.steps.len()) {
            actions.push(Action::Fail(i));
        }
        let coro = node(i, spec.value, actions, Live::new(record));
        handles[i] =
            Some(if refs[i] > 1 { Child::Shared(coro.share()) } else { Child::Plain(coro) });
    }
    let root = match handles[0].take() {
        Some(Child::Plain(root)) => root,
        _ => unreachable!("nobody refers to the root"),
    };
    // Shared handles kept here are clones: dropping them leaves the parents' copies.
    (root, handles.into_iter().flatten().collect())
}

fn check(graph: &Graph) -> Result<(), TestCaseError> {
    let n = graph.nodes.len();
    let record = Rc::new(Record { runs: RefCell::new(vec![0; n]), ..Record::default() });
    let (root, rest) = build(graph, &record);
    let (expected, reachable) = model(graph);
    let got = Loop::new().error_group(graph.mode).run(root);
    drop(rest);
    match (&got, expected) {
        (Ok(got), Ok(expected)) => {
            prop_assert_eq!(*got, expected);
            let runs = record.runs.borrow();
            for i in 0..n {
                prop_assert_eq!(runs[i], u32::from(reachable[i]), "runs of node {}", i);
            }
        }
        (Err(err), Err(failing)) => {
            prop_assert_eq!(err.downcast_ref::<Boom>(), Some(&Boom(failing)), "{:?}", err);
            match graph.mode {
                ErrorGroup::Auto | ErrorGroup::Never => {
                    prop_assert!(err.group().is_none(), "{:?}", err)
                }
                ErrorGroup::Always => {
                    let group = err.group().expect("always a group");
                    prop_assert_eq!(group[0].downcast_ref::<Boom>(), Some(&Boom(failing)));
                    prop_assert!(group[1..].iter().all(tinyio::Error::is_cancelled), "{:?}", err);
                }
            }
            let runs = record.runs.borrow();
            prop_assert_eq!(runs[failing], 1);
            for i in 0..n {
                prop_assert!(runs[i] <= u32::from(reachable[i]), "runs of node {}", i);
            }
        }
        (got, expected) => prop_assert!(false, "got {:?}, expected {:?}", got, expected),
    }
    prop_assert_eq!(record.created.get(), n);
    prop_assert_eq!(record.live.get(), 0, "coroutines left alive");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_the_model(graph in graph()) {
        check(&graph)?;
    }
}

/// A fixed diamond with a failing shared node, as a sanity check of the harness itself.
#[test]
fn harness_sanity() {
    let graph = Graph {
        nodes: vec![
            NodeSpec { value: 1, steps: vec![StepSpec::Await(vec![1, 2])], fail_at: None },
            NodeSpec { value: 10, steps: vec![StepSpec::Await(vec![3])], fail_at: None },
            NodeSpec {
                value: 100,
                steps: vec![StepSpec::Pause, StepSpec::Await(vec![3])],
                fail_at: None,
            },
            NodeSpec { value: 1000, steps: vec![StepSpec::Sleep0], fail_at: None },
        ],
        mode: ErrorGroup::Auto,
    };
    assert_eq!(model(&graph).0, Ok(1 + 10 + 100 + 2 * 1000));
    check(&graph).unwrap();
    let mut failing = graph.clone();
    failing.nodes[3].fail_at = Some(1);
    assert_eq!(model(&failing).0, Err(3));
    check(&failing).unwrap();
    let mut unreachable = graph;
    unreachable.nodes.push(NodeSpec { value: 5, steps: vec![], fail_at: Some(0) });
    assert_eq!(model(&unreachable).0, Ok(2111));
    check(&unreachable).unwrap();
}
