//! Group tokens: the bearer credential of one resource group's job RPCs. Storage issues one when
//! a caller proves the group's secret (`OpenResourceGroup`, argon2, slow on purpose) and checks
//! it on every job RPC with one HMAC-SHA256 (microseconds, no database): a token is
//! `silk-group-<id>-<hex HMAC(key, "silk group token v1" ‖ id)>`, so it names its group and
//! only the holder of the key can make one. Changing the key (`group_token_key_file`) revokes
//! every group token at once; groups then open again with their secrets.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use silk_tdl::ResourceGroupId;

use super::Token;
use silk_core::auth::hex;

const PREFIX: &str = "silk-group-";
const DOMAIN: &[u8] = b"silk group token v1";
/// Hex digits of the MAC.
const MAC_HEX: usize = 64;

/// Issues and checks group tokens with one key.
#[derive(Debug, Clone)]
pub struct GroupTokens {
    key: Token,
}

impl GroupTokens {
    /// Tokens signed with `key`.
    #[must_use]
    pub fn new(key: Token) -> Self {
        Self { key }
    }

    fn mac(&self, group: ResourceGroupId) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        mac.update(&group.0.to_be_bytes());
        mac
    }

    /// The token of `group`.
    #[must_use]
    pub fn issue(&self, group: ResourceGroupId) -> Token {
        let mac = hex(&self.mac(group).finalize().into_bytes());
        Token::new(&format!("{PREFIX}{}-{mac}", group.0), "group token")
            .expect("a group token is long visible ASCII")
    }

    /// The group `presented` is a token of, if it is one made with this key (the MAC is
    /// compared in constant time).
    #[must_use]
    pub fn verify(&self, presented: &[u8]) -> Option<ResourceGroupId> {
        let text = std::str::from_utf8(presented).ok()?;
        let (id, mac) = text.strip_prefix(PREFIX)?.split_once('-')?;
        if mac.len() != MAC_HEX || id.len() > 20 {
            return None;
        }
        let group = ResourceGroupId(id.parse().ok()?);
        let mac = unhex(mac)?;
        self.mac(group).verify_slice(&mac).ok()?;
        Some(group)
    }
}

/// The group a group token names, read without checking it (a client's view of its own
/// token); `None` for anything not shaped like a group token.
#[must_use]
pub fn group_of_token(token: &str) -> Option<ResourceGroupId> {
    let (id, mac) = token.strip_prefix(PREFIX)?.split_once('-')?;
    (mac.len() == MAC_HEX).then_some(())?;
    id.parse().ok().map(ResourceGroupId)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_group_and_only_the_key_makes_one() {
        let tokens = GroupTokens::new(Token::generate().unwrap());
        let other_key = GroupTokens::new(Token::generate().unwrap());
        let t7 = tokens.issue(ResourceGroupId(7));
        assert_eq!(
            tokens.verify(t7.expose().as_bytes()),
            Some(ResourceGroupId(7))
        );
        assert_eq!(group_of_token(t7.expose()), Some(ResourceGroupId(7)));
        assert_eq!(group_of_token("a-admin-token-of-some-length-000000"), None);
        assert_eq!(other_key.verify(t7.expose().as_bytes()), None);
        // The MAC of group 7 does not open group 8.
        let forged = t7.expose().replacen("-7-", "-8-", 1);
        assert_eq!(tokens.verify(forged.as_bytes()), None);
        for bad in [
            "",
            "silk-group-",
            "silk-group-7-",
            "silk-group-x-00",
            &t7.expose()[..t7.expose().len() - 1],
            &format!("{}0", t7.expose()),
        ] {
            assert_eq!(tokens.verify(bad.as_bytes()), None, "{bad}");
        }
        assert!(!format!("{tokens:?}").contains(t7.expose()));
    }
}
