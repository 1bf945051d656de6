//! `scimlink migrate --from DATA --to postgres://…`: moves a stopped host's
//! SQLite database into an empty PostgreSQL database, for several hosts to
//! share (see `store::transfer`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::shown;
use crate::store::transfer::sqlite_to_postgres;
use crate::store::{PostgresStore, TokenCipher};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data folder of the host whose database moves (stop that host
    /// first).
    #[arg(long)]
    from: PathBuf,
    /// The empty PostgreSQL database it moves into.
    #[arg(long, env = "SCIMLINK_DATABASE_URL", hide_env_values = true)]
    to: String,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    // Checked before the key is read: reading it would create one in a
    // folder named by mistake.
    let database = args.from.join(crate::store::sqlite::DATABASE_FILE);
    anyhow::ensure!(
        database.is_file(),
        "there is no scimlink database at {}: --from names the data folder of the host to move",
        shown(&database)
    );
    // The tokens move sealed: the key is only read to bring an older
    // database to the current schema, and to tell the operator which key
    // the new hosts need.
    let cipher = TokenCipher::for_data_folder(&args.from)
        .with_context(|| format!("cannot read the host key of {}", shown(&args.from)))?;
    let target =
        PostgresStore::open(&args.to, cipher.clone()).context("cannot open the target database")?;
    println!("moving {} into {target:?}", shown(&args.from));
    let moved = sqlite_to_postgres(&args.from, cipher, &target, &mut |table, rows| {
        println!("  {table:<18} {rows:>9} rows");
    })
    .context("nothing was moved")?;
    let total: u64 = moved.tables.iter().map(|(_, rows)| rows).sum();
    println!("moved {total} rows in one transaction.");
    println!(
        "Start every host with --database (or SCIMLINK_DATABASE_URL) and the key of {}: \
         its secret.key, or the same {}.",
        shown(&args.from),
        crate::secrets::SECRET_KEY_ENV
    );
    Ok(ExitCode::SUCCESS)
}
