//! `strata verify DIR`: every checksum of every file, nothing changed.

use std::process::ExitCode;

use clap::Args;
use strata::engine::Db;

use super::{DbArgs, Failure};

/// Arguments of `strata verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
}

/// Checks the directory and lists every damaged file; exit status 1 if any.
pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode, Failure> {
    args.db.existing()?;
    let opts = args.db.options()?;
    let report = Db::verify_dir(&args.db.dir, &opts)?;
    for d in &report.damaged {
        println!("DAMAGED {}: {}", d.path.display(), d.error);
    }
    println!(
        "checked {} files, {} bytes, {} entries: {}",
        report.files_checked,
        report.bytes_checked,
        report.entries_checked,
        if report.is_ok() {
            "all sound".to_owned()
        } else {
            format!("{} damaged", report.damaged.len())
        }
    );
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
