//! The README's configuration table is the command line: every flag and environment variable it
//! lists exists with that name and default, and every setting `parallax serve` and
//! `parallax render-host` read from the environment is in it.

use clap::CommandFactory;
use parallax_server::config::Cli;

/// One row of the table: flag (may be empty), environment variable, default (`None` when the
/// table says it in words, e.g. "made once, kept in the database").
struct Row {
    flag: String,
    env: String,
    default: Option<String>,
}

fn readme_rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README beside the workspace");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_string();
    table
        .lines()
        .filter(|line| line.starts_with('|') && line.contains("PARALLAX_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            Row {
                flag: unquote(cells[1]),
                env: unquote(cells[2]),
                default: {
                    let cell = cells[3].trim();
                    let quoted = cell.len() > 2 && cell.starts_with('`') && cell.ends_with('`');
                    (quoted && cell.matches('`').count() == 2).then(|| unquote(cell))
                },
            }
        })
        .collect()
}

/// (long flag, env, default) of every argument of `parallax SUBCOMMAND` that has an environment
/// variable.
fn settings(subcommand: &str) -> Vec<(String, String, Option<String>)> {
    let cli = Cli::command();
    let command = cli
        .find_subcommand(subcommand)
        .unwrap_or_else(|| panic!("parallax {subcommand}"));
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some((format!("--{}", arg.get_long()?), env, default))
        })
        .collect()
}

#[test]
fn the_readme_table_is_the_command_line() {
    let rows = readme_rows();
    assert!(rows.len() >= 10, "the table was read: {} rows", rows.len());
    let serve = settings("serve");
    let host = settings("render-host");
    for row in &rows {
        let (flag, env, default) = if row.flag.is_empty() {
            // A render host's setting, which local hosts read from serve's environment.
            host.iter()
                .find(|(_, env, _)| *env == row.env)
                .unwrap_or_else(|| panic!("render-host reads no {}", row.env))
        } else {
            serve
                .iter()
                .find(|(flag, _, _)| *flag == row.flag)
                .unwrap_or_else(|| panic!("serve has no {}", row.flag))
        };
        assert_eq!(*env, row.env, "the variable of {flag}");
        assert_eq!(*default, row.default, "the default of {env}");
    }
    for (flag, env, _) in &serve {
        assert!(
            rows.iter().any(|row| row.env == *env),
            "serve's {flag} ({env}) is missing from the README's table"
        );
    }
}
