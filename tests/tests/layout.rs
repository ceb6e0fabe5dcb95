//! The workspace's files form no circles: within each crate, a file may use another only if that
//! one does not use it back, directly or around a loop of other files. A circle means neither file
//! can be read or changed alone; where two files need each other, the shared part belongs in a
//! file both can use. The same holds between a crate's top-level folders.
//!
//! A file "uses" another when it names a path into it: `use crate::a::b::…`, `super::…`, a path
//! through one of its own child modules (`mod a;` then `a::f()`), also inside macros such as
//! Leptos' `view!`. Declaring a module (`mod a;`) is not a use, and a file's own unit tests
//! (`#[cfg(test)]`) are left out: they see their file through `super::*`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A file's module path within its crate: `[]` for `lib.rs`, `["http", "arr"]` for
/// `http/arr.rs`, `["http"]` for `http/mod.rs`.
type ModulePath = Vec<String>;

/// Every `.rs` file of the library under `src`, by module path. A binary's `main.rs` beside a
/// `lib.rs` is a crate of its own and uses the library only by name.
fn files_of(src: &Path) -> BTreeMap<ModulePath, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<ModulePath, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("the source folder is readable")
            .map(|e| e.expect("a readable folder entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .expect("UTF-8 file names")
                .to_string();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = prefix.to_vec();
                let top = prefix.is_empty();
                match name.as_str() {
                    "lib" if top => {}
                    "main" if top => continue,
                    "mod" if !top => {}
                    _ => module.push(name),
                }
                out.insert(module, path);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(src, &[], &mut files);
    files
}

/// The paths a file names, each as its segments, and the child modules it declares.
#[derive(Default)]
struct Names {
    paths: Vec<Vec<String>>,
    children: BTreeSet<String>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                use_paths(item, prefix, out);
            }
        }
    }
}

/// `a::b::c` sequences in a macro's tokens, which syn leaves unparsed.
fn token_paths(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Group(g) => token_paths(g.stream(), out),
            TokenTree::Ident(first) => {
                let follows_colons =
                    i >= 1 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                let mut path = vec![first.to_string()];
                let mut j = i + 1;
                while j + 2 < tokens.len() {
                    let colons = matches!(&tokens[j], TokenTree::Punct(p) if p.as_char() == ':')
                        && matches!(tokens.get(j + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                    match (colons, tokens.get(j + 2)) {
                        (true, Some(TokenTree::Ident(next))) => {
                            path.push(next.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if path.len() > 1 && !follows_colons {
                    out.push(path);
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if module.content.is_none() {
            self.children.insert(module.ident.to_string());
        }
        syn::visit::visit_item_mod(self, module);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        use_paths(&item.tree, &mut Vec::new(), &mut self.paths);
    }

    /// `pub(crate)` and `pub(super)` name a module but use nothing of it.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.paths
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        token_paths(mac.tokens.clone(), &mut self.paths);
        syn::visit::visit_macro(self, mac);
    }
}

/// The file a path from `module` leads into: the longest module prefix that is a file.
fn resolve(
    module: &ModulePath,
    path: &[String],
    children: &BTreeSet<String>,
    files: &BTreeMap<ModulePath, PathBuf>,
) -> Option<ModulePath> {
    let (mut base, rest): (ModulePath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (module.clone(), &path[1..]),
        Some("super") => {
            let mut base = module.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some(child) if children.contains(child) => (module.clone(), path),
        _ => return None,
    };
    let mut found = base.clone();
    for segment in rest {
        base.push(segment.clone());
        if files.contains_key(&base) {
            found = base.clone();
        } else {
            break;
        }
    }
    Some(found)
}

/// Which file of the crate under `src` uses which.
fn uses(src: &Path) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let files = files_of(src);
    files
        .iter()
        .map(|(module, path)| {
            let text = std::fs::read_to_string(path).expect("a readable source file");
            let syntax = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            let mut names = Names::default();
            names.visit_file(&syntax);
            let used = names
                .paths
                .iter()
                .filter_map(|p| resolve(module, p, &names.children, &files))
                .filter(|used| used != module)
                .collect();
            (module.clone(), used)
        })
        .collect()
}

/// The circles among `edges`: strongly connected sets of more than one file (Tarjan).
fn circles(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct Search<'a> {
        edges: &'a BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<&'a ModulePath, usize>,
        low: BTreeMap<&'a ModulePath, usize>,
        stack: Vec<&'a ModulePath>,
        found: Vec<Vec<ModulePath>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, v: &'a ModulePath) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut circle = Vec::new();
                while let Some(w) = self.stack.pop() {
                    circle.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if circle.len() > 1 {
                    circle.sort();
                    self.found.push(circle);
                }
            }
        }
    }
    let mut search = Search {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !search.index.contains_key(v) {
            search.visit(v);
        }
    }
    search.found
}

fn name(module: &ModulePath) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("/")
    }
}

fn workspace_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("the workspace is readable")
        .map(|e| e.expect("a readable folder entry").path().join("src"))
        .filter(|src| src.join("lib.rs").is_file() || src.join("main.rs").is_file())
        .collect();
    sources.sort();
    sources
}

#[test]
fn no_file_of_any_crate_is_part_of_a_circle() {
    let sources = workspace_sources();
    let crates: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
    for crate_name in ["core", "render", "host", "server", "app", "headset"] {
        assert!(
            crates
                .iter()
                .any(|c| c.ends_with(&format!("/{crate_name}/src"))),
            "{crate_name} is among the checked crates: {crates:?}"
        );
    }
    let mut found = Vec::new();
    for src in &sources {
        let uses = uses(src);
        for circle in circles(&uses).into_iter().chain(circles(&by_folder(&uses))) {
            let names: Vec<String> = circle.iter().map(name).collect();
            found.push(format!("{}: {}", src.display(), names.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "files or folders that need each other:\n{}",
        found.join("\n")
    );
}

/// The same uses between top-level folders (and top-level files): a folder's arrows to the
/// others run one way, so each folder can be read knowing only those it uses.
fn by_folder(
    uses: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let top = |m: &ModulePath| m.iter().take(1).cloned().collect::<ModulePath>();
    let mut folders: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for (from, to) in uses {
        let entry = folders.entry(top(from)).or_default();
        entry.extend(to.iter().map(top).filter(|t| *t != top(from)));
    }
    folders
}

/// The check sees a circle where there is one: through `crate::`, `super::`, a child module's
/// bare path and a path inside a macro, and not through a file's own unit tests.
#[test]
fn the_check_finds_circles_of_every_kind() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a; mod b; mod c; mod d; mod e;\npub use a::A;",
    );
    write("a.rs", "pub struct A; pub fn f() { crate::b::g() }");
    write("b.rs", "pub fn g() { let _ = super::a::A; }");
    write("c/mod.rs", "mod inner; pub fn h() { inner::i() }");
    write(
        "c/inner.rs",
        "pub fn i() { view! { <p>{crate::c::h()}</p> } }",
    );
    write(
        "d.rs",
        "pub fn j() {}\n#[cfg(test)]\nmod tests { use crate::e::k; }",
    );
    write("e.rs", "pub fn k() { crate::d::j() }");
    let mut found: Vec<Vec<String>> = circles(&uses(src))
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    found.sort();
    assert_eq!(found, vec![vec!["a", "b"], vec!["c", "c/inner"]]);

    // Folders: f/x uses g/y and g/z uses f/w, no file circle, but f and g need each other.
    write("f/mod.rs", "pub mod w; pub mod x;");
    write("f/w.rs", "pub fn w() {}");
    write("f/x.rs", "pub fn x() { crate::g::y::y() }");
    write("g/mod.rs", "pub mod y; pub mod z;");
    write("g/y.rs", "pub fn y() {}");
    write("g/z.rs", "pub fn z() { crate::f::w::w() }");
    write(
        "lib.rs",
        "mod a; mod b; mod c; mod d; mod e; mod f; mod g;\npub use a::A;",
    );
    let uses = uses(src);
    assert_eq!(circles(&uses).len(), 2, "no new file circle");
    let folders: Vec<Vec<String>> = circles(&by_folder(&uses))
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    assert!(
        folders.contains(&vec!["f".to_string(), "g".to_string()]),
        "{folders:?}"
    );
}
