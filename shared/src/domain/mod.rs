//! The referral domain, pure: entities with their own validation (programs, codes, promoters,
//! relations, rewards, invitations), money, the reward-rules engine, and the use cases that read
//! and write several entities through the store ports. Entities import nothing above them; use
//! cases import entities and ports. Nothing here imports `aws_*`, `axum` or `reqwest`.

pub mod code;
pub mod event;
pub mod invitation;
pub mod ledger;
pub mod money;
pub mod program;
pub mod promoter;
pub mod referral;
pub mod rules;
pub mod stats;
pub mod tenant;
pub mod webhook;

#[cfg(test)]
mod tests {
    /// The domain stays pure: no file under `src/domain` names the AWS SDK, axum, reqwest or the
    /// Lambda runtime. Persistence and transport come in through the store ports.
    #[test]
    fn the_domain_imports_no_infrastructure() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
        let mut files = vec![root];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                // Spelled in pieces so that this line does not match itself.
                for banned in [
                    ["aws", "_"],
                    ["ax", "um"],
                    ["req", "west"],
                    ["lambda", "_"],
                    ["serde", "_dynamo"],
                ]
                .map(|p| p.concat())
                {
                    assert!(
                        !code.contains(&banned),
                        "{}:{}: the domain names {banned}: {line}",
                        path.display(),
                        number + 1
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 10, "the domain's files were found ({checked})");
    }
}
