//! One `KaasCluster` reconcile, followed through operator-core's code the way a newcomer reads
//! it, stays in each file of the cluster controller once: from the controller's entry
//! (`cluster::reconcile`) to the status write, at most 3 times does the path go back into a
//! file it had already left. The build step on that path is a plain function.
//!
//! How the path is followed (the source is parsed, not run):
//! - from each function, every call in source order whose callee lives in
//!   `operator-core/src/cluster/` (free functions by their path through the `use`s, associated
//!   functions by their type, methods by a name defined once there); calls leaving the folder
//!   are library calls (the kinds table, the metrics, `api`) and not followed;
//! - the reconcile that reaches the status write: `return` expressions, `Err(..)` match arms
//!   and `let … else` branches end a reconcile early and are not followed, and the walk ends
//!   when the sequencer's call to the status write returns;
//! - a function is read once, at its first call; a short one that calls nothing of the
//!   controller outside its own file (an accessor, a constructor: at most `HOVER_LINES`) is
//!   read where it is called, as an editor shows it on hover;
//! - a call into a file other than the caller's enters that file; the caller is resumed after
//!   it (the reader keeps it open). Entering a file already entered before, with another file
//!   in between, is a return.

use std::collections::BTreeMap;
use std::path::Path;

use syn::visit::Visit;

/// One parsed file of the cluster controller.
struct Source {
    /// `cluster::status`, for `cluster/status/mod.rs`.
    module: String,
    /// Relative to operator-core's `src`.
    file: String,
    ast: syn::File,
    /// Local name → absolute path (`cluster::…`, or `ext::…` for other crates and modules
    /// outside the folder).
    uses: BTreeMap<String, String>,
}

fn parse_sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../operator-core/src");
    let mut files = Vec::new();
    let mut dirs = vec![src.join("cluster")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let modules: Vec<String> = files
        .iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            parts.join("::")
        })
        .collect();
    files
        .iter()
        .zip(&modules)
        .map(|(path, module)| {
            let text = std::fs::read_to_string(path).unwrap();
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            let mut uses = BTreeMap::new();
            for item in &ast.items {
                if let syn::Item::Use(u) = item {
                    flatten_use(&u.tree, Vec::new(), &mut |local, segs| {
                        if let Some(abs) = absolute(module, &segs, &modules) {
                            uses.insert(local, abs.join("::"));
                        }
                    });
                }
            }
            Source {
                module: module.clone(),
                file: path.strip_prefix(&src).unwrap().display().to_string(),
                ast,
                uses,
            }
        })
        .collect()
}

/// Calls `out(local name, path)` for each name a `use` tree brings in.
fn flatten_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut dyn FnMut(String, Vec<String>)) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut prefix = prefix;
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last().cloned() {
                    out(last, prefix);
                }
            } else {
                let mut segs = prefix;
                segs.push(name.clone());
                out(name, segs);
            }
        }
        syn::UseTree::Rename(r) => {
            let mut segs = prefix;
            segs.push(r.ident.to_string());
            out(r.rename.to_string(), segs);
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix.clone(), out);
            }
        }
        syn::UseTree::Glob(_) => {}
    }
}

/// `segs`, as written in `module`, as a path from the crate root; `ext` first for anything
/// outside the crate. None when it is not a path this reading resolves.
fn absolute(module: &str, segs: &[String], modules: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.split("::").map(str::to_string).collect();
    let first = segs.first()?;
    let rest = match first.as_str() {
        "crate" => return Some(segs[1..].to_vec()),
        "self" => &segs[1..],
        "super" => {
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            rest
        }
        _ => {
            let child = format!("{module}::{first}");
            if modules.contains(&child) || segs.len() == 1 {
                segs
            } else {
                let mut ext = vec!["ext".to_string()];
                ext.extend(segs.iter().cloned());
                return Some(ext);
            }
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// A function of the controller: free, or in an `impl` of `owner`.
struct Func<'a> {
    source: &'a Source,
    owner: Option<String>,
    name: String,
    has_self: bool,
    is_async: bool,
    body: &'a syn::Block,
}

/// Methods named like common standard-library ones are not resolved by name alone.
const COMMON: &[&str] = &[
    "get", "all", "as_str", "fmt", "context", "of", "len", "is_empty", "iter", "insert", "remove",
    "clone", "map", "new", "default", "into", "from", "contains", "find",
];

struct Index<'a> {
    sources: &'a [Source],
    free: BTreeMap<(String, String), Func<'a>>,
    methods: BTreeMap<(String, String), Vec<Func<'a>>>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

impl<'a> Index<'a> {
    fn new(sources: &'a [Source]) -> Index<'a> {
        let mut index = Index {
            sources,
            free: BTreeMap::new(),
            methods: BTreeMap::new(),
        };
        for source in sources {
            for item in &source.ast.items {
                match item {
                    syn::Item::Fn(f) if !is_test(&f.attrs) => {
                        index.free.insert(
                            (source.module.clone(), f.sig.ident.to_string()),
                            Func {
                                source,
                                owner: None,
                                name: f.sig.ident.to_string(),
                                has_self: false,
                                is_async: f.sig.asyncness.is_some(),
                                body: &f.block,
                            },
                        );
                    }
                    syn::Item::Impl(i) if !is_test(&i.attrs) => {
                        let syn::Type::Path(ty) = &*i.self_ty else {
                            continue;
                        };
                        let owner = ty.path.segments.last().unwrap().ident.to_string();
                        for it in &i.items {
                            if let syn::ImplItem::Fn(f) = it {
                                let name = f.sig.ident.to_string();
                                index
                                    .methods
                                    .entry((owner.clone(), name.clone()))
                                    .or_default()
                                    .push(Func {
                                        source,
                                        owner: Some(owner.clone()),
                                        name,
                                        has_self: f.sig.receiver().is_some(),
                                        is_async: f.sig.asyncness.is_some(),
                                        body: &f.block,
                                    });
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        index
    }

    fn source(&self, module: &str) -> Option<&'a Source> {
        self.sources.iter().find(|s| s.module == module)
    }

    /// The controller function `call`, made in `caller`, calls; None for a library call.
    fn resolve(&self, caller: &Func<'a>, call: &Call) -> Option<&Func<'a>> {
        match call {
            Call::Method(name) => {
                if COMMON.contains(&name.as_str()) {
                    return None;
                }
                let mut found = self
                    .methods
                    .iter()
                    .filter(|((_, n), _)| n == name)
                    .flat_map(|(_, fs)| fs)
                    .filter(|f| f.has_self);
                let first = found.next()?;
                found.next().is_none().then_some(first)
            }
            Call::Path(segs) => {
                if segs.len() == 2 && segs[0] == "Self" {
                    let owner = caller.owner.clone()?;
                    return self.methods.get(&(owner, segs[1].clone()))?.first();
                }
                let modules: Vec<String> = self.sources.iter().map(|s| s.module.clone()).collect();
                let abs: Vec<String> = match caller.source.uses.get(&segs[0]) {
                    Some(u) => u
                        .split("::")
                        .map(str::to_string)
                        .chain(segs[1..].iter().cloned())
                        .collect(),
                    None => absolute(&caller.source.module, segs, &modules)?,
                };
                self.lookup(&abs, 0)
            }
        }
    }

    fn lookup(&self, abs: &[String], depth: usize) -> Option<&Func<'a>> {
        if depth > 4 || abs.first().is_none_or(|s| s != "cluster") {
            return None;
        }
        let (last, prefix) = abs.split_last()?;
        let module = prefix.join("::");
        if let Some(f) = self.free.get(&(module.clone(), last.clone())) {
            return Some(f);
        }
        // Re-exported with `pub use`.
        if let Some(source) = self.source(&module)
            && let Some(target) = source.uses.get(last)
        {
            let target: Vec<String> = target.split("::").map(str::to_string).collect();
            return self.lookup(&target, depth + 1);
        }
        // `Type::function`: types are named once in the folder.
        let owner = prefix.last()?;
        self.methods.get(&(owner.clone(), last.clone()))?.first()
    }
}

/// A call as written.
enum Call {
    Path(Vec<String>),
    Method(String),
}

/// The calls of a body, in the order they run, leaving out the branches that end a
/// reconcile early.
#[derive(Default)]
struct Calls(Vec<Call>);

fn is_err(pat: &syn::Pat) -> bool {
    match pat {
        syn::Pat::TupleStruct(t) => t.path.segments.last().is_some_and(|s| s.ident == "Err"),
        syn::Pat::Or(o) => o.cases.iter().any(is_err),
        _ => false,
    }
}

impl<'ast> Visit<'ast> for Calls {
    fn visit_expr_return(&mut self, _: &'ast syn::ExprReturn) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if !is_err(&arm.pat) {
            syn::visit::visit_arm(self, arm);
        }
    }
    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
        }
    }
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        for arg in &call.args {
            self.visit_expr(arg);
        }
        match &*call.func {
            syn::Expr::Path(p) => self.0.push(Call::Path(
                p.path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect(),
            )),
            other => self.visit_expr(other),
        }
    }
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.visit_expr(&call.receiver);
        for arg in &call.args {
            self.visit_expr(arg);
        }
        self.0.push(Call::Method(call.method.to_string()));
    }
}

/// A function of at most this many lines that calls nothing of the controller outside its own
/// file (an accessor, a constructor) is read where it is called, the way an editor shows it on
/// hover.
const HOVER_LINES: usize = 8;

/// The files entered, in order, each with the function entered.
struct Walk<'i, 'a> {
    index: &'i Index<'a>,
    entered: Vec<(String, String)>,
    /// Functions already read: a second call is not read again.
    read: Vec<*const Func<'a>>,
    wrote_status: bool,
}

impl<'a> Walk<'_, 'a> {
    fn follow(&mut self, f: &Func<'a>, caller_file: Option<&str>) {
        if self.wrote_status || self.entered.len() > 500 {
            return;
        }
        let label = match &f.owner {
            Some(owner) => format!("{owner}::{}", f.name),
            None => f.name.clone(),
        };
        let id = f as *const Func<'a>;
        if self.read.contains(&id) {
            return;
        }
        self.read.push(id);
        let mut calls = Calls::default();
        calls.visit_block(f.body);
        let leaf = calls.0.iter().all(|c| {
            self.index
                .resolve(f, c)
                .is_none_or(|callee| callee.source.file == f.source.file)
        });
        let span = f.body.brace_token.span;
        let lines = span.close().end().line - span.open().start().line + 1;
        if leaf && lines <= HOVER_LINES {
            return;
        }
        if caller_file != Some(f.source.file.as_str()) {
            self.entered.push((f.source.file.clone(), label));
        }
        for call in &calls.0 {
            if self.wrote_status {
                break;
            }
            if let Some(callee) = self.index.resolve(f, call) {
                self.follow(callee, Some(&f.source.file));
                if f.source.module == "cluster"
                    && callee.source.module == "cluster::own_writes"
                    && callee.name == "write_status"
                {
                    self.wrote_status = true;
                }
            }
        }
    }
}

#[test]
fn a_reconcile_stays_in_each_file_of_the_controller_once() {
    let sources = parse_sources();
    let index = Index::new(&sources);
    let entry = index
        .free
        .get(&("cluster".to_string(), "reconcile".to_string()))
        .expect("cluster::reconcile, the controller's entry");
    let mut walk = Walk {
        index: &index,
        entered: Vec::new(),
        read: Vec::new(),
        wrote_status: false,
    };
    walk.follow(entry, None);
    let path: Vec<String> = walk
        .entered
        .iter()
        .map(|(file, f)| format!("{file} ({f})"))
        .collect();
    let shown = path.join("\n  ");
    assert!(
        walk.wrote_status,
        "never reached the status write:\n  {shown}"
    );
    // The reading found the pipeline's steps (else it is the reading that is broken).
    for step in [
        "cluster/plan.rs",
        "cluster/gather.rs",
        "cluster/build.rs",
        "cluster/apply_step.rs",
        "cluster/addon_step.rs",
        "cluster/own_writes.rs",
    ] {
        assert!(
            walk.entered.iter().any(|(file, _)| file == step),
            "the path does not enter {step}:\n  {shown}"
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut returns = Vec::new();
    for (i, (file, f)) in walk.entered.iter().enumerate() {
        if i > 0 && walk.entered[i - 1].0 == *file {
            continue;
        }
        if seen.contains(&file.as_str()) {
            returns.push(format!("{file} ({f})"));
        } else {
            seen.push(file);
        }
    }
    eprintln!(
        "{} files, {} entries, {} returns:\n  {shown}",
        seen.len(),
        walk.entered.len(),
        returns.len()
    );
    assert!(
        returns.len() <= 3,
        "the reconcile goes back {} times into a file it had left: {}\nwhole path:\n  {shown}",
        returns.len(),
        returns.join(", ")
    );
}

#[test]
fn the_build_step_is_a_plain_function() {
    let sources = parse_sources();
    let index = Index::new(&sources);
    let build = index
        .free
        .get(&("cluster::build".to_string(), "build".to_string()))
        .expect("cluster::build::build");
    assert!(!build.is_async, "the build is async");
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../operator-core/src")
            .join(&build.source.file),
    )
    .unwrap();
    for io in [".await", "kube::Client", "Client,", "client("] {
        assert!(
            !file.contains(io),
            "{} names {io}: the build reads nothing from outside",
            build.source.file
        );
    }
}
