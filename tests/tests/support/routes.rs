//! The routes Parallax serves, read from the source of the coordinator's HTTP edge
//! (`server/src/http/`), the render host's connection and the app's pages, so that a route added
//! later is in every test that goes through them all (access rules, the API document).

use std::path::Path;

use syn::visit::Visit;

/// One route: its method and its path pattern, as registered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
}

/// `.route("path", get(a).post(b))` calls in a file: every (method, path) they register.
#[derive(Default)]
struct Routes(Vec<Route>);

fn methods_of(expr: &syn::Expr, out: &mut Vec<String>) {
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
    match expr {
        syn::Expr::Call(call) => {
            if let syn::Expr::Path(path) = &*call.func
                && let Some(name) = path.path.get_ident().map(|i| i.to_string())
                && METHODS.contains(&name.as_str())
            {
                out.push(name.to_uppercase());
            }
        }
        syn::Expr::MethodCall(call) => {
            let name = call.method.to_string();
            if METHODS.contains(&name.as_str()) {
                out.push(name.to_uppercase());
            }
            methods_of(&call.receiver, out);
        }
        _ => {}
    }
}

impl<'ast> Visit<'ast> for Routes {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if call.method == "route"
            && call.args.len() == 2
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(path),
                ..
            }) = &call.args[0]
        {
            let mut methods = Vec::new();
            methods_of(&call.args[1], &mut methods);
            assert!(!methods.is_empty(), "no method found for {}", path.value());
            for method in methods {
                self.0.push(Route {
                    method,
                    path: path.value(),
                });
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// The routes the coordinator's HTTP edge registers (`server/src/http/`): its API, sockets and
/// files, not the app's pages.
pub fn coordinator_routes() -> Vec<Route> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let files: Vec<_> = std::fs::read_dir(root.join("server/src/http"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    routes_in(&files)
}

/// Every route the coordinator and a render host serve, and the app's pages (as `GET`).
pub fn all_routes() -> Vec<Route> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut routes = coordinator_routes();
    routes.extend(routes_in(&[root.join("host/src/connection.rs")]));
    // The pages: `path!("…")` in the app's router.
    let app = std::fs::read_to_string(root.join("app/src/lib.rs")).unwrap();
    for page in app.split("path!(\"").skip(1) {
        let path = page.split('"').next().unwrap();
        routes.push(Route {
            method: "GET".into(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        });
    }
    routes.sort();
    routes.dedup();
    routes
}

/// The routes registered in `files`, sorted.
fn routes_in(files: &[std::path::PathBuf]) -> Vec<Route> {
    let mut routes = Routes::default();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        routes.visit_file(&syn::parse_file(&text).unwrap());
    }
    routes.0.sort();
    routes.0.dedup();
    routes.0
}
