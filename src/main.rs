//! The `sori` binary: parses the command line and runs the chosen command.

use clap::Parser;
use sori::config::{Cli, Command, ModelCommand};
use sori::model;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(_config) => todo!(),
        Command::Model(cmd) => run_model_command(cmd),
    }
}

fn run_model_command(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch {
            name,
            dest,
            quantize,
        } => {
            let known = model::fetch::known_model(&name)
                .ok_or_else(|| model::ModelError::Unknown(name.clone()))?;
            let path = model::fetch::fetch(known, &dest, quantize)?;
            println!("{}", path.display());
        }
        ModelCommand::ImportCt2 { dir, out, quantize } => {
            model::import_ct2_dir(&dir, &out, quantize)?;
            println!("{}", out.display());
        }
        ModelCommand::Check { path } => {
            let info = model::check_file(&path)?;
            println!(
                "{}: {:?}, {} tensors",
                path.display(),
                info.hparams,
                info.tensor_count
            );
        }
    }
    Ok(())
}
