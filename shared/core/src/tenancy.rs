//! Tenants (organisations), their members and roles, and invitations.
//!
//! The identity provider knows users; the table knows which tenant each belongs to and
//! with which role. A user belongs to one tenant. Table layout:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `TENANT#<t>` | `PROFILE` | organisation name, created at, metadata, admin count |
//! | `TENANT#<t>` | `MEMBER#<user>` | email, role, joined at |
//! | `TENANT#<t>` | `INVITE#<email>` | a pending invitation |
//! | `USER#<user>` | `MEMBERSHIP` | the user's tenant and role (looked up on every request) |
//! | `INVITE#<sha256 of code>` | `INVITE` | the invitation a code redeems |

use chrono::{DateTime, Duration, Utc};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit;
use crate::identity::{Email, Identity, IdentityError, Password, UserId};
use crate::ids::TenantId;
use crate::mail::{Mail, MailError, Mailer};
use crate::table::{Condition, Index, Item, Key, Query, SortKey, Table, TableError, Update, Write};
use crate::time::now;

/// How long an invitation can be redeemed.
pub const INVITATION_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::ManageAgents | Permission::ManageSessions => matches!(self, Role::Admin | Role::Operator),
            Permission::ManageMembers | Permission::ManageKeys | Permission::ManageIntegrations => self == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

/// What a request needs its caller's role to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    ManageAgents,
    ManageSessions,
    ManageMembers,
    ManageKeys,
    /// Phone numbers and tools.
    ManageIntegrations,
}

impl Permission {
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::ManageAgents => "manage agents (operators and admins)",
            Permission::ManageSessions => "manage sessions (operators and admins)",
            Permission::ManageMembers => "manage members (admins)",
            Permission::ManageKeys => "manage API keys (admins)",
            Permission::ManageIntegrations => "manage phone numbers and tools (admins)",
        }
    }
}

/// An organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub organization_name: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TenantRecord {
    #[serde(flatten)]
    tenant: Tenant,
    admin_count: i64,
}

/// A member of a tenant, as its admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    /// Whether handoffs are emailed to this member; unset, the role decides (admins and
    /// operators, who can take a conversation over, yes; viewers no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_emails: Option<bool>,
}

impl Member {
    pub fn takes_handoff_emails(&self) -> bool {
        self.handoff_emails.unwrap_or(matches!(self.role, Role::Admin | Role::Operator))
    }
}

/// Who is calling, in which tenant, with which role: established once per request from a
/// verified token, never from the request's path, query or body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
}

impl Membership {
    pub fn require(&self, permission: Permission) -> Result<(), TenancyError> {
        if self.role.allows(permission) { Ok(()) } else { Err(TenancyError::Forbidden(permission)) }
    }
}

/// A pending invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub tenant_id: TenantId,
    pub email: Email,
    pub role: Role,
    pub invited_by: UserId,
    pub created_at: DateTime<Utc>,
    /// (`expires_at` is the table's own expiry attribute.)
    pub valid_until: DateTime<Utc>,
    code_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("the organization name must be 1 to 120 characters of text")]
    InvalidOrganizationName,
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("this account is not a member of any organization")]
    NotAMember,
    #[error("your role does not allow you to {}", .0.describe())]
    Forbidden(Permission),
    #[error("no such member")]
    MemberNotFound,
    #[error("an organization must keep at least one admin")]
    LastAdmin,
    #[error("invitations are for the operator or viewer role; promote members afterwards")]
    InvalidInvitedRole,
    #[error("this person is already a member")]
    AlreadyMember,
    #[error("the invitation is not valid: it may have expired, been used, or be for another email")]
    InvalidInvitation,
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

fn tenant_key(tenant: &TenantId) -> Key {
    Key::new(format!("TENANT#{tenant}"), "PROFILE")
}

fn member_key(tenant: &TenantId, user: &UserId) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("MEMBER#{user}"))
}

fn membership_key(user: &UserId) -> Key {
    Key::new(format!("USER#{user}"), "MEMBERSHIP")
}

fn invite_key(tenant: &TenantId, email: &Email) -> Key {
    Key::new(format!("TENANT#{tenant}"), format!("INVITE#{email}"))
}

fn invite_code_key(code_hash: &str) -> Key {
    Key::new(format!("INVITE#{code_hash}"), "INVITE")
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn validate_organization_name(raw: &str) -> Result<String, TenancyError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 120 || name.chars().any(char::is_control) {
        return Err(TenancyError::InvalidOrganizationName);
    }
    Ok(name.to_owned())
}

/// The new tenant and its first admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub tenant_id: TenantId,
    pub user_id: UserId,
}

/// Writes `writes` after a sign-up; if they fail, removes the user again so that a
/// failed registration leaves nothing behind.
async fn complete_sign_up(
    table: &dyn Table,
    identity: &dyn Identity,
    email: &Email,
    writes: Vec<Write>,
) -> Result<(), TenancyError> {
    if let Err(e) = table.transact(writes).await {
        if let Err(undo) = identity.delete_user(email).await {
            tracing::error!(cause = %format!("{undo:#}"), "removing a half-registered user failed");
        }
        return Err(e.into());
    }
    Ok(())
}

fn member_writes(tenant: &TenantId, member: &Member) -> Result<Vec<Write>, TableError> {
    let membership = Membership {
        tenant_id: tenant.clone(),
        user_id: member.user_id.clone(),
        email: member.email.clone(),
        role: member.role,
    };
    Ok(vec![
        Write::Put {
            item: Item::from_record(member_key(tenant, &member.user_id), member)?,
            condition: Some(Condition::NotExists),
        },
        Write::Put {
            item: Item::from_record(membership_key(&member.user_id), &membership)?,
            condition: Some(Condition::NotExists),
        },
    ])
}

/// Signs up a new organisation and its first user, an admin. The user must confirm their
/// email before signing in.
pub async fn register(
    table: &dyn Table,
    identity: &dyn Identity,
    email: &Email,
    password: &Password,
    organization_name: &str,
) -> Result<Registration, TenancyError> {
    let organization_name = validate_organization_name(organization_name)?;
    let user_id = identity.sign_up(email, password).await?;
    let tenant = Tenant { tenant_id: TenantId::generate(), organization_name, created_at: now(), metadata: Map::new() };
    let member = Member {
        user_id: user_id.clone(),
        email: email.clone(),
        role: Role::Admin,
        joined_at: tenant.created_at,
        handoff_emails: None,
    };
    let mut writes = vec![Write::Put {
        item: Item::from_record(
            tenant_key(&tenant.tenant_id),
            &TenantRecord { tenant: tenant.clone(), admin_count: 1 },
        )?,
        condition: Some(Condition::NotExists),
    }];
    writes.extend(member_writes(&tenant.tenant_id, &member)?);
    complete_sign_up(table, identity, email, writes).await?;
    audit!("tenant_registered", tenant = tenant.tenant_id, actor = user_id, role = "admin");
    Ok(Registration { tenant_id: tenant.tenant_id, user_id })
}

/// Signs up a user who was invited, into the inviting tenant with the invited role.
pub async fn join(
    table: &dyn Table,
    identity: &dyn Identity,
    email: &Email,
    password: &Password,
    invitation_code: &str,
) -> Result<Registration, TenancyError> {
    let code_hash = sha256_hex(invitation_code.trim());
    let invitation: Invitation =
        table.get(&invite_code_key(&code_hash)).await?.ok_or(TenancyError::InvalidInvitation)?.record()?;
    if invitation.email != *email {
        return Err(TenancyError::InvalidInvitation);
    }
    let user_id = identity.sign_up(email, password).await?;
    let tenant = invitation.tenant_id.clone();
    let member = Member {
        user_id: user_id.clone(),
        email: email.clone(),
        role: invitation.role,
        joined_at: now(),
        handoff_emails: None,
    };
    let mut writes = member_writes(&tenant, &member)?;
    writes.push(Write::Delete { key: invite_code_key(&code_hash), condition: Some(Condition::Exists) });
    writes.push(Write::Delete { key: invite_key(&tenant, email), condition: Some(Condition::Exists) });
    complete_sign_up(table, identity, email, writes).await.map_err(|e| match e {
        TenancyError::Table(TableError::ConditionFailed { .. }) => TenancyError::InvalidInvitation,
        other => other,
    })?;
    audit!("member_joined", tenant = tenant, actor = user_id, role = invitation.role.as_str());
    Ok(Registration { tenant_id: tenant, user_id })
}

/// The caller's membership, if their account belongs to a tenant.
pub async fn membership(table: &dyn Table, user: &UserId) -> Result<Option<Membership>, TenancyError> {
    Ok(table.get(&membership_key(user)).await?.map(|i| i.record()).transpose()?)
}

pub async fn tenant(table: &dyn Table, tenant: &TenantId) -> Result<Option<Tenant>, TenancyError> {
    let record: Option<TenantRecord> = table.get(&tenant_key(tenant)).await?.map(|i| i.record()).transpose()?;
    Ok(record.map(|r| r.tenant))
}

/// Members and pending invitations of the caller's tenant.
pub async fn members(table: &dyn Table, actor: &Membership) -> Result<(Vec<Member>, Vec<Invitation>), TenancyError> {
    actor.require(Permission::Read)?;
    let partition = format!("TENANT#{}", actor.tenant_id);
    let query =
        |prefix: &str| Query::partition(Index::Primary, partition.clone()).sort(SortKey::BeginsWith(prefix.into()));
    let members = table.query(query("MEMBER#")).await?.records()?;
    let invitations = table.query(query("INVITE#")).await?.records()?;
    Ok((members, invitations))
}

/// Invites `email` to the caller's tenant and emails them a code to sign up with. A new
/// invitation to the same email replaces the old one.
pub async fn invite(
    table: &dyn Table,
    mailer: &dyn Mailer,
    actor: &Membership,
    email: &Email,
    role: Role,
) -> Result<Invitation, TenancyError> {
    actor.require(Permission::ManageMembers)?;
    if role == Role::Admin {
        return Err(TenancyError::InvalidInvitedRole);
    }
    let tenant = tenant(table, &actor.tenant_id).await?.ok_or(TenancyError::NotAMember)?;
    let (members, _) = members(table, actor).await?;
    if members.iter().any(|m| m.email == *email) {
        return Err(TenancyError::AlreadyMember);
    }
    let code = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let created_at = now();
    let invitation = Invitation {
        tenant_id: actor.tenant_id.clone(),
        email: email.clone(),
        role,
        invited_by: actor.user_id.clone(),
        created_at,
        valid_until: created_at + Duration::days(INVITATION_DAYS),
        code_hash: sha256_hex(&code),
    };
    let expires = invitation.valid_until.timestamp();
    let mut writes = vec![
        Write::Put {
            item: Item::from_record(invite_key(&actor.tenant_id, email), &invitation)?.expiring_at(expires),
            condition: None,
        },
        Write::Put {
            item: Item::from_record(invite_code_key(&invitation.code_hash), &invitation)?.expiring_at(expires),
            condition: Some(Condition::NotExists),
        },
    ];
    let previous: Option<Invitation> =
        table.get(&invite_key(&actor.tenant_id, email)).await?.map(|i| i.record()).transpose()?;
    if let Some(previous) = &previous {
        writes.push(Write::Delete { key: invite_code_key(&previous.code_hash), condition: None });
    }
    table.transact(writes).await?;
    let mail = Mail {
        to: email.clone(),
        subject: format!("You are invited to {} on Oratio", tenant.organization_name),
        text: format!(
            "{} invited you to join {} on Oratio as {}.\n\nSign up with this email address and the invitation code:\n\n    {code}\n\nThe code works for {INVITATION_DAYS} days.\n",
            actor.email,
            tenant.organization_name,
            role.as_str()
        ),
    };
    if let Err(e) = mailer.send(mail).await {
        // Nobody can redeem an invitation that was never delivered: take it back.
        let undo = vec![
            Write::Delete { key: invite_key(&actor.tenant_id, email), condition: None },
            Write::Delete { key: invite_code_key(&invitation.code_hash), condition: None },
        ];
        if let Err(undo) = table.transact(undo).await {
            tracing::error!(cause = %format!("{undo:#}"), "withdrawing an undelivered invitation failed");
        }
        return Err(e.into());
    }
    audit!("member_invited", tenant = actor.tenant_id, actor = actor.user_id, email = email, role = role.as_str());
    Ok(invitation)
}

async fn member(table: &dyn Table, tenant: &TenantId, user: &UserId) -> Result<Member, TenancyError> {
    table.get(&member_key(tenant, user)).await?.ok_or(TenancyError::MemberNotFound)?.record().map_err(Into::into)
}

/// The write that keeps the admin count right when `from` becomes `to` (or leaves).
fn admin_count_write(tenant: &TenantId, from: Role, to: Option<Role>) -> Option<Write> {
    let key = tenant_key(tenant);
    match (from, to) {
        (Role::Admin, Some(Role::Admin)) => None,
        (Role::Admin, _) => Some(Write::Update {
            key,
            update: Update::new().add("admin_count", -1),
            condition: Some(Condition::GreaterThan("admin_count".into(), 1.into())),
        }),
        (_, Some(Role::Admin)) => {
            Some(Write::Update { key, update: Update::new().add("admin_count", 1), condition: Some(Condition::Exists) })
        }
        _ => None,
    }
}

fn last_admin(e: TableError) -> TenancyError {
    match e {
        TableError::ConditionFailed { .. } => TenancyError::LastAdmin,
        other => other.into(),
    }
}

/// Gives a member another role. The last admin cannot be demoted.
pub async fn change_role(
    table: &dyn Table,
    actor: &Membership,
    user: &UserId,
    role: Role,
) -> Result<Member, TenancyError> {
    actor.require(Permission::ManageMembers)?;
    let mut member = member(table, &actor.tenant_id, user).await?;
    if member.role == role {
        return Ok(member);
    }
    let unchanged = Condition::equals("role", member.role.as_str());
    let mut writes = vec![
        Write::Update {
            key: member_key(&actor.tenant_id, user),
            update: Update::new().set("role", role.as_str()),
            condition: Some(unchanged.clone()),
        },
        Write::Update {
            key: membership_key(user),
            update: Update::new().set("role", role.as_str()),
            condition: Some(unchanged),
        },
    ];
    writes.extend(admin_count_write(&actor.tenant_id, member.role, Some(role)));
    table.transact(writes).await.map_err(last_admin)?;
    audit!(
        "role_changed",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        member = user,
        from = member.role.as_str(),
        to = role.as_str()
    );
    member.role = role;
    Ok(member)
}

/// Turns a member's handoff emails on or off: their own, or anyone's for an admin.
pub async fn set_handoff_emails(
    table: &dyn Table,
    actor: &Membership,
    user: &UserId,
    on: bool,
) -> Result<Member, TenancyError> {
    if &actor.user_id != user {
        actor.require(Permission::ManageMembers)?;
    }
    let update = Update::new().set("handoff_emails", on);
    let item = match table.update(&member_key(&actor.tenant_id, user), update, Some(Condition::Exists)).await {
        Ok(item) => item,
        Err(e) if e.is_condition_failed() => return Err(TenancyError::MemberNotFound),
        Err(e) => return Err(e.into()),
    };
    Ok(item.record()?)
}

/// Removes a member from the tenant; their account can no longer reach it. The last
/// admin cannot be removed.
pub async fn remove_member(table: &dyn Table, actor: &Membership, user: &UserId) -> Result<(), TenancyError> {
    actor.require(Permission::ManageMembers)?;
    let member = member(table, &actor.tenant_id, user).await?;
    let mut writes = vec![
        Write::Delete { key: member_key(&actor.tenant_id, user), condition: Some(Condition::Exists) },
        Write::Delete { key: membership_key(user), condition: None },
    ];
    writes.extend(admin_count_write(&actor.tenant_id, member.role, None));
    table.transact(writes).await.map_err(last_admin)?;
    audit!(
        "member_removed",
        tenant = actor.tenant_id,
        actor = actor.user_id,
        member = user,
        role = member.role.as_str()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_product_promises() {
        use Permission::*;
        assert!(Role::Viewer.allows(Read));
        assert!(!Role::Viewer.allows(ManageAgents));
        assert!(Role::Operator.allows(ManageAgents) && Role::Operator.allows(ManageSessions));
        assert!(!Role::Operator.allows(ManageKeys) && !Role::Operator.allows(ManageMembers));
        assert!([Read, ManageAgents, ManageSessions, ManageMembers, ManageKeys].iter().all(|p| Role::Admin.allows(*p)));
    }

    #[test]
    fn organization_names_are_trimmed_and_bounded() {
        assert_eq!(validate_organization_name("  Acme Dental ").unwrap(), "Acme Dental");
        assert!(validate_organization_name("   ").is_err());
        assert!(validate_organization_name(&"x".repeat(121)).is_err());
        assert!(validate_organization_name("a\u{0}b").is_err());
    }
}
