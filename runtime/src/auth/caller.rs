//! Who is calling: the bearer credential of a request (`authorization: Bearer <token>`) checked
//! against a service's [`Authority`], and the verdict of an RPC's [`Rule`] for that caller.
//! Missing or unknown credentials are `UNAUTHENTICATED`; a known credential that does not
//! grant the RPC is `PERMISSION_DENIED` (a service RPC refuses everything but the cluster token
//! with `UNAUTHENTICATED`).

use silk_tdl::ResourceGroupId;
use tonic::Status;

use super::group_token::GroupTokens;
use super::rules::Rule;
use super::{BEARER, Token};

/// The credentials a service accepts. A service without one of them refuses the RPCs that need
/// it.
#[derive(Debug, Clone, Default)]
pub struct Authority {
    /// The cluster token (service RPCs).
    pub cluster: Option<Token>,
    /// The admin token (creating resource groups, listing every group's jobs).
    pub admin: Option<Token>,
    /// The key of group tokens (job RPCs).
    pub groups: Option<GroupTokens>,
}

/// The authenticated caller of a request, put in its extensions for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off on this server (in-process tests and benches only).
    Unchecked,
    /// No credential.
    Anonymous,
    /// A credential this server does not know.
    Unknown,
    /// The cluster token.
    Service,
    /// The admin token.
    Admin,
    /// A group token.
    Group(ResourceGroupId),
}

impl Authority {
    /// The caller presenting `header` (the value of [`super::AUTHORIZATION`], if any).
    #[must_use]
    pub fn identify(&self, header: Option<&[u8]>) -> Caller {
        let Some(header) = header else {
            return Caller::Anonymous;
        };
        let Some(token) = header.strip_prefix(BEARER.as_bytes()) else {
            return Caller::Unknown;
        };
        // Both comparisons always run, so timing tells nothing about which token matched.
        let service = self.cluster.as_ref().is_some_and(|t| t.matches(token));
        let admin = self.admin.as_ref().is_some_and(|t| t.matches(token));
        if service {
            return Caller::Service;
        }
        if admin {
            return Caller::Admin;
        }
        match self.groups.as_ref().and_then(|g| g.verify(token)) {
            Some(group) => Caller::Group(group),
            None => Caller::Unknown,
        }
    }
}

impl Caller {
    /// Whether `rule` lets this caller in (the service may refuse later, e.g. a job of another
    /// group).
    ///
    /// # Errors
    /// `UNAUTHENTICATED` or `PERMISSION_DENIED`, naming the credential needed.
    pub fn admit(self, rule: Rule) -> Result<(), Status> {
        let unauthenticated = |needed: &str| {
            Err(Status::unauthenticated(match self {
                Self::Anonymous => format!("no credential; this call needs {needed}"),
                _ => format!("credential not accepted; this call needs {needed}"),
            }))
        };
        let denied = |needed: &str| {
            Err(Status::permission_denied(format!(
                "this credential does not allow the call; it needs {needed}"
            )))
        };
        match (rule, self) {
            (_, Self::Unchecked)
            | (Rule::Secret, _)
            | (Rule::Service, Self::Service)
            | (Rule::Admin, Self::Admin)
            | (Rule::Group, Self::Group(_))
            | (Rule::GroupOrAdmin, Self::Group(_) | Self::Admin) => Ok(()),
            (Rule::Service, _) => unauthenticated("the cluster token"),
            (_, Self::Anonymous | Self::Unknown) => unauthenticated(needed(rule)),
            (_, Self::Service | Self::Admin | Self::Group(_)) => denied(needed(rule)),
        }
    }

    /// The caller of `request` as the auth layer recorded it ([`Caller::Anonymous`] when the
    /// server has no auth layer, which never happens in silk's servers).
    #[must_use]
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or(Self::Anonymous)
    }
}

fn needed(rule: Rule) -> &'static str {
    match rule {
        Rule::Service => "the cluster token",
        Rule::Admin => "the admin token",
        Rule::Group => "the job's resource-group token",
        Rule::GroupOrAdmin => "a resource-group token or the admin token",
        Rule::Secret => "the resource group's secret",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn credentials_are_told_apart() {
        let (cluster, admin, key) = (
            Token::generate().unwrap(),
            Token::generate().unwrap(),
            Token::generate().unwrap(),
        );
        let groups = GroupTokens::new(key);
        let group = groups.issue(ResourceGroupId(3));
        let authority = Authority {
            cluster: Some(cluster.clone()),
            admin: Some(admin.clone()),
            groups: Some(groups),
        };
        let bearer = |t: &Token| format!("{BEARER}{}", t.expose());
        assert_eq!(authority.identify(None), Caller::Anonymous);
        assert_eq!(
            authority.identify(Some(cluster.expose().as_bytes())),
            Caller::Unknown
        );
        assert_eq!(
            authority.identify(Some(bearer(&cluster).as_bytes())),
            Caller::Service
        );
        assert_eq!(
            authority.identify(Some(bearer(&admin).as_bytes())),
            Caller::Admin
        );
        assert_eq!(
            authority.identify(Some(bearer(&group).as_bytes())),
            Caller::Group(ResourceGroupId(3))
        );
        assert_eq!(authority.identify(Some(b"Bearer nope")), Caller::Unknown);
        // A server without a cluster token accepts no service caller.
        let bare = Authority::default();
        assert_eq!(
            bare.identify(Some(bearer(&cluster).as_bytes())),
            Caller::Unknown
        );
    }

    #[test]
    fn verdicts() {
        let code = |c: Caller, r: Rule| c.admit(r).err().map(|s| s.code());
        let g = Caller::Group(ResourceGroupId(1));
        assert_eq!(code(Caller::Service, Rule::Service), None);
        assert_eq!(code(g, Rule::Service), Some(Code::Unauthenticated));
        assert_eq!(
            code(Caller::Admin, Rule::Service),
            Some(Code::Unauthenticated)
        );
        assert_eq!(
            code(Caller::Anonymous, Rule::Group),
            Some(Code::Unauthenticated)
        );
        assert_eq!(
            code(Caller::Unknown, Rule::Admin),
            Some(Code::Unauthenticated)
        );
        assert_eq!(
            code(Caller::Service, Rule::Group),
            Some(Code::PermissionDenied)
        );
        assert_eq!(code(g, Rule::Admin), Some(Code::PermissionDenied));
        assert_eq!(
            code(Caller::Admin, Rule::Group),
            Some(Code::PermissionDenied)
        );
        assert_eq!(code(Caller::Admin, Rule::GroupOrAdmin), None);
        assert_eq!(code(Caller::Anonymous, Rule::Secret), None);
        assert_eq!(code(Caller::Unchecked, Rule::Service), None);
    }
}
