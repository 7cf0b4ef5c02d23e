//! The layout the README's "Layout" section promises, checked: the pure core depends on no
//! runtime crate, and in each crate the top-level modules depend on each other in one
//! direction only.
//!
//! The second is not something the compiler enforces inside a crate, so this test reads the
//! sources: a module `a` depends on `b` when code of `a` names `crate::b` (in a `use`, a path
//! or a `crate::{b, …}` group). Comments and test code (`tests.rs`, `*_tests.rs`,
//! `testutil.rs`, `#[cfg(test)] mod … { … }`) are left out: tests may reach up the graph, as
//! a dev-dependency may.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (this package sits one level down).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the package has a parent folder")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `file` holds only tests.
fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name == "testutil.rs" || name.ends_with("_tests.rs")
}

/// `text` without its `#[cfg(test)] mod name { … }` blocks and its comment lines.
fn shipped_code(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            // Skip the item that follows: a `mod x;` line, or a `mod x {` block to its `}`.
            let mut depth = 0usize;
            for next in lines.by_ref() {
                depth += next.matches('{').count();
                depth = depth.saturating_sub(next.matches('}').count());
                if depth == 0 && (next.trim_end().ends_with(';') || next.contains('}')) {
                    break;
                }
            }
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The top-level modules of the crate whose sources are in `src`, and which of them each
/// one's shipped code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name == "lib" || name == "main" || name == "bin" {
            continue;
        }
        let slot = files.entry(name).or_default();
        if path.is_dir() {
            rust_files(&path, slot);
        } else if path.extension().is_some_and(|e| e == "rs") {
            slot.push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, paths) in &files {
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in paths.iter().filter(|p| !is_test_file(p)) {
            let text = std::fs::read_to_string(path).expect("read source");
            let code = shipped_code(&text);
            let shown = path.strip_prefix(src).unwrap_or(path).display().to_string();
            for target in named_modules(&code) {
                if target != *module && modules.contains(&target) {
                    uses.entry(target).or_default().insert(shown.clone());
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// The first path segments after every `crate::` in `code`, and the names of `crate::{…}`
/// groups.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut start = 0usize;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            out.insert(ident(&group[start..i]));
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        out.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn top_level_modules_depend_on_each_other_in_one_direction() {
    for (krate, at_least) in [("core", 10), ("pipeline", 10), ("sim", 2), ("cli", 3)] {
        let src = repo().join(krate).join("src");
        let graph = module_graph(&src);
        assert!(
            graph.len() >= at_least,
            "{}: too few modules found",
            src.display()
        );
        let mut report = String::new();
        for cycle in cycles(&graph) {
            report.push_str(&format!("cycle: {}\n", cycle.join(", ")));
            for a in &cycle {
                for (b, files) in &graph[a] {
                    if cycle.contains(b) {
                        let files: Vec<&str> = files.iter().map(String::as_str).collect();
                        report.push_str(&format!("  {a} -> {b} ({})\n", files.join(", ")));
                    }
                }
            }
        }
        assert!(report.is_empty(), "{krate}/src:\n{report}");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let code = "use crate::b::X;\nuse crate::{c, d::Y};\n";
    let named = named_modules(code);
    assert_eq!(named, ["b", "c", "d"].map(String::from).into());
    let edge = |to: &str| (to.to_string(), BTreeSet::from(["x.rs".to_string()]));
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeMap::from([edge("b")])),
        ("b".to_string(), BTreeMap::from([edge("c")])),
        ("c".to_string(), BTreeMap::from([edge("a")])),
        ("d".to_string(), BTreeMap::from([edge("a")])),
    ]);
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    let test_only = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::z;\n}\n";
    assert_eq!(
        named_modules(&shipped_code(test_only)),
        ["a".to_string()].into()
    );
}

/// The crates the core must never pull in, directly or through another crate: an async
/// runtime, HTTP, storage, templating, a browser.
const NOT_IN_CORE: [&str; 9] = [
    "tokio",
    "async-nats",
    "reqwest",
    "hyper",
    "axum",
    "redb",
    "minijinja",
    "headless_chrome",
    "rustls",
];

/// The names of the packages `package` depends on, directly or not, outside its tests.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: BTreeSet<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.trim_end_matches('*').to_string())
        .collect();
    assert!(names.contains(package), "{tree}");
    names
}

#[test]
fn the_core_pulls_in_no_runtime_crate() {
    let names = normal_dependencies("earshot-core");
    assert!(
        names.contains("simd-json"),
        "the tree lists dependencies: {names:?}"
    );
    for banned in NOT_IN_CORE {
        let dashed = banned.replace('_', "-");
        assert!(
            !names.contains(banned) && !names.contains(&dashed),
            "earshot-core depends on {banned}: {names:?}"
        );
    }
}

/// The runtime links neither the command line, nor the peers the tests and the demo play,
/// nor a browser: those depend on it.
#[test]
fn the_runtime_pulls_in_no_simulator_command_or_browser() {
    let names = normal_dependencies("earshot");
    assert!(names.contains("earshot-core"), "{names:?}");
    for banned in ["earshot-sim", "earshot-cli", "headless_chrome", "clap"] {
        assert!(
            !names.contains(banned),
            "earshot depends on {banned}: {names:?}"
        );
    }
}
