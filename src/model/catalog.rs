//! The Whisper models whisper.cpp publishes as ggml files, by the names its
//! users know, each with the SHA-1 and approximate size it is published with:
//! nothing is kept that does not match.
//!
//! The names, sizes and SHA-1s of the f16 files, `large-v2-q5_0`,
//! `large-v3-q5_0` and `large-v3-turbo-q5_0` are those of whisper.cpp's
//! `models/README.md`. Its README does not list the other quantized files
//! (`-q5_1`, `-q8_0`, `medium*-q5_0`); their SHA-1s are taken from a published
//! catalogue of the same repository's files that agrees with whisper.cpp's
//! table on every entry both hold. None of them could be checked against the
//! files from the machine this was written on (no access to Hugging Face); a
//! wrong one can only refuse a good download, never accept a bad one.

/// A ggml model file whisper.cpp publishes (`ggml-{name}.bin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// The name whisper.cpp's users give (`large-v3-turbo-q8_0`).
    pub name: &'static str,
    /// The published size, MiB (approximate: a download is refused when it
    /// runs more than a tenth past it).
    pub mib: u32,
    /// SHA-1 of the file, hex.
    pub sha1: &'static str,
}

impl CatalogModel {
    /// The file name in the source's layout and in the model folder.
    pub fn file_name(&self) -> String {
        file_name(self.name)
    }

    /// The most bytes a download of this file may take.
    pub fn max_bytes(&self) -> u64 {
        u64::from(self.mib) * 1024 * 1024 * 11 / 10
    }
}

/// The file name of model `name`: `ggml-{name}.bin`.
pub fn file_name(name: &str) -> String {
    format!("ggml-{name}.bin")
}

const fn model(name: &'static str, mib: u32, sha1: &'static str) -> CatalogModel {
    CatalogModel { name, mib, sha1 }
}

/// Every model `sori model fetch` can download by name.
pub const CATALOG: &[CatalogModel] = &[
    model("tiny", 75, "bd577a113a864445d4c299885e0cb97d4ba92b5f"),
    model("tiny-q5_1", 31, "2827a03e495b1ed3048ef28a6a4620537db4ee51"),
    model("tiny-q8_0", 42, "19e8118f6652a650569f5a949d962154e01571d9"),
    model("tiny.en", 75, "c78c86eb1a8faa21b369bcd33207cc90d64ae9df"),
    model("tiny.en-q5_1", 31, "3fb92ec865cbbc769f08137f22470d6b66e071b6"),
    model("tiny.en-q8_0", 42, "802d6668e7d411123e672abe4cb6c18f12306abb"),
    model("base", 142, "465707469ff3a37a2b9b8d8f89f2f99de7299dac"),
    model("base-q5_1", 57, "a3733eda680ef76256db5fc5dd9de8629e62c5e7"),
    model("base-q8_0", 78, "7bb89bb49ed6955013b166f1b6a6c04584a20fbe"),
    model("base.en", 142, "137c40403d78fd54d454da0f9bd998f78703390c"),
    model("base.en-q5_1", 57, "d26d7ce5a1b6e57bea5d0431b9c20ae49423c94a"),
    model("base.en-q8_0", 78, "bb1574182e9b924452bf0cd1510ac034d323e948"),
    model("small", 466, "55356645c2b361a969dfd0ef2c5a50d530afd8d5"),
    model("small-q5_1", 181, "6fe57ddcfdd1c6b07cdcc73aaf620810ce5fc771"),
    model("small-q8_0", 252, "bcad8a2083f4e53d648d586b7dbc0cd673d8afad"),
    model("small.en", 466, "db8a495a91d927739e50b3fc1cc4c6b8f6c2d022"),
    model("small.en-q5_1", 181, "20f54878d608f94e4a8ee3ae56016571d47cba34"),
    model("small.en-q8_0", 252, "9d75ff4ccfa0a8217870d7405cf8cef0a5579852"),
    model("small.en-tdrz", 465, "b6c6e7e89af1a35c08e6de56b66ca6a02a2fdfa1"),
    model("medium", 1536, "fd9727b6e1217c2f614f9b698455c4ffd82463b4"),
    model("medium-q5_0", 514, "7718d4c1ec62ca96998f058114db98236937490e"),
    model("medium-q8_0", 785, "e66645948aff4bebbec71b3485c576f3d63af5d6"),
    model("medium.en", 1536, "8c30f0e44ce9560643ebd10bbe50cd20eafd3723"),
    model("medium.en-q5_0", 514, "bb3b5281bddd61605d6fc76bc5b92d8f20284c3b"),
    model("medium.en-q8_0", 785, "b1cf48c12c807e14881f634fb7b6c6ca867f6b38"),
    model("large-v1", 2970, "b1caaf735c4cc1429223d5a74f0f4d0b9b59a299"),
    model("large-v2", 2970, "0f4c8e34f21cf1a914c59d8b3ce882345ad349d6"),
    model("large-v2-q5_0", 1126, "00e39f2196344e901b3a2bd5814807a769bd1630"),
    model("large-v2-q8_0", 1536, "da97d6ca8f8ffbeeb5fd147f79010eeea194ba38"),
    model("large-v3", 2970, "ad82bf6a9043ceed055076d0fd39f5f186ff8062"),
    model("large-v3-q5_0", 1126, "e6e2ed78495d403bef4b7cff42ef4aaadcfea8de"),
    model("large-v3-turbo", 1536, "4af2b29d7ec73d781377bfd1758ca957a807e941"),
    model("large-v3-turbo-q5_0", 547, "e050f7970618a659205450ad97eb95a18d69c9ee"),
    model("large-v3-turbo-q8_0", 834, "01bf15bedffe9f39d65c1b6ff9b687ea91f59e0e"),
];

/// The catalogued model called `name`, if any.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_hashes_are_sha1_hex() {
        let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for m in CATALOG {
            assert!(
                m.sha1.len() == 40 && m.sha1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{}",
                m.name
            );
        }
    }
}
