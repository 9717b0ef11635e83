#!/usr/bin/env python3
"""Generates sample.json, the simulated estate shipped with caguard.

Deterministic (fixed seed): run `python3 sim/estates/gen_sample.py > sim/estates/sample.json`.
The estate has the mess real tenants have; docs/estate-format.md lists what each tenant exercises.
"""
import json
import random
import uuid

rnd = random.Random(20261121)


def guid():
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


CA_ADMIN = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"
SEC_ADMIN = "194ae4cb-b126-40b2-bd5b-6091b380977d"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
HELPDESK = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
INTUNE_ADMIN = "3a2c62db-5318-420d-8d74-23affee5d9d5"
SP_EXCL_TYPE = "#microsoft.graph.conditionalAccessEnumeratedExternalTenants"
ALL_TENANTS_TYPE = "#microsoft.graph.conditionalAccessAllExternalTenants"
STAMP = "2025-06-01T09:00:00.0000000Z"

MSP = "6f1c2a43-7d5e-4b8a-9c3f-2e1d0a9b8c7d"
APP_ID = "3c9f8e21-5a4b-4d6c-8e7f-1a2b3c4d5e6f"
APP_SECRET = "sim-secret-3c9f8e21"


def user(name, upn):
    return {"id": guid(), "displayName": name, "userPrincipalName": upn, "userType": "Member"}


def policy(name, state="enabled", users=None, apps=None, grant=("mfa",), locations=None, session=None, **extra):
    u = {"includeUsers": [], "excludeUsers": [], "includeGroups": [], "excludeGroups": [],
         "includeRoles": [], "excludeRoles": []}
    u.update(users or {"includeUsers": ["All"]})
    p = {
        "id": guid(), "displayName": name, "createdDateTime": STAMP, "modifiedDateTime": None,
        "templateId": None, "state": state, "sessionControls": session,
        "conditions": {
            "userRiskLevels": [], "signInRiskLevels": [], "clientAppTypes": ["all"], "platforms": None,
            "locations": locations, "times": None, "deviceStates": None,
            "applications": {"includeApplications": apps or ["All"], "excludeApplications": [],
                             "includeUserActions": [], "includeAuthenticationContextClassReferences": []},
            "users": u,
        },
        "grantControls": None if grant is None else {
            "operator": "OR", "builtInControls": list(grant), "customAuthenticationFactors": [], "termsOfUse": []},
    }
    p.update(extra)
    return p


def legacy_only(p):
    """The legacy-authentication clients only, as Microsoft's template blocks them."""
    p["conditions"]["clientAppTypes"] = ["exchangeActiveSync", "other"]
    return p


def relationship(tenant, name, roles, status="active"):
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "id": f"{guid()}-{guid()[:13]}", "displayName": f"CIPP GDAP {name}"[:50], "duration": "P730D",
        "customer": {"tenantId": tenant, "displayName": name},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": r} for r in roles]},
        "status": status, "autoExtendDuration": "P180D",
        "createdDateTime": "2025-01-10T11:24:42.3148266Z", "lastModifiedDateTime": "2025-01-10T11:26:44.9941884Z",
        "activatedDateTime": "2025-01-10T11:26:44.9941884Z" if status == "active" else None,
        "endDateTime": "2027-01-10T11:24:42.3148266Z",
    }


STD_ROLES = [CA_ADMIN, SEC_ADMIN, USER_ADMIN, HELPDESK, EXCHANGE_ADMIN, INTUNE_ADMIN]

# ---------------- MSP tenant ----------------
techs = [user(n, f"{n.split()[0].lower()}@contosomsp.onmicrosoft.com") for n in ["Alex Tech", "Blair Tech", "Casey Tech"]]
breakglass = [user("Break Glass 1", "bg1@contosomsp.onmicrosoft.com"), user("Break Glass 2", "bg2@contosomsp.onmicrosoft.com")]
service = user("CIPP Service Account", "cipp-svc@contosomsp.onmicrosoft.com")
# The Syncro article's Part B: Syncro's CSP integration signs in as its own account.
syncro_service = {"id": "5b1e9a77-3c2d-4e8f-9a10-6c7d8e9f0a21", "displayName": "Syncro Service Account",
                  "userPrincipalName": "syncro-svc@contosomsp.onmicrosoft.com", "userType": "Member"}
staff = [user("Dana Office", "dana@contosomsp.onmicrosoft.com"), user("Eli Sales", "eli@contosomsp.onmicrosoft.com")]
tech_group = {"id": guid(), "displayName": "CIPP Technicians", "members": [t["id"] for t in techs]}
staff_group = {"id": guid(), "displayName": "All Staff", "members": [u["id"] for u in techs + staff]}
msp = {
    "id": MSP, "displayName": "Contoso MSP", "defaultDomain": "contosomsp.onmicrosoft.com",
    "securityDefaults": False, "p1": True, "consented": True,
    "users": techs + breakglass + [service] + staff + [syncro_service],
    "groups": [tech_group, staff_group],
    "policies": [
        policy("Require MFA for all users", users={"includeUsers": ["All"], "excludeUsers": [b["id"] for b in breakglass]}),
        legacy_only(policy("Block legacy authentication", grant=("block",),
                           users={"includeUsers": ["All"], "excludeUsers": [breakglass[0]["id"]]})),
        policy("Require compliant device for staff", state="enabledForReportingButNotEnforced",
               users={"includeGroups": [staff_group["id"]]}, grant=("compliantDevice",)),
    ],
    # The apps technicians sign in to: CIPP (self-hosted, through its CIPP-SSO app
    # registration) and Syncro (its OIDC app registration).
    "servicePrincipals": [
        {"id": "0d6f3a52-8b1c-4e27-9f40-1a2b3c4d5e60", "appId": "7e3b9c41-2d5a-4f68-8b19-0c1d2e3f4a5b", "displayName": "CIPP-SSO"},
        {"id": "2a7c4e61-9d3b-4f18-a250-3b4c5d6e7f80", "appId": "c4d2e8f1-6a3b-4c59-9e70-1f2a3b4c5d6e", "displayName": "Syncro"},
    ],
    "namedLocations": [{
        "@odata.type": "#microsoft.graph.countryNamedLocation", "id": guid(), "displayName": "Head office country",
        "createdDateTime": STAMP, "modifiedDateTime": STAMP, "countriesAndRegions": ["GB"],
        "includeUnknownCountriesAndRegions": False, "countryLookupMethod": "clientIpAddress"}],
}

# ---------------- customer tenants ----------------
customers = []
relationships = []


def customer(name, domain, policies=(), roles=STD_ROLES, rel_status="active", groups=(), **flags):
    tid = guid()
    t = {"id": tid, "displayName": name, "defaultDomain": f"{domain}.onmicrosoft.com",
         "securityDefaults": False, "p1": True, "consented": True,
         "users": [user("Admin", f"admin@{domain}.onmicrosoft.com"), user("Staff One", f"one@{domain}.onmicrosoft.com")],
         "groups": list(groups), "policies": list(policies), "namedLocations": []}
    t.update(flags)
    customers.append(t)
    relationships.append(relationship(tid, name, roles, rel_status))
    return t


def sp_exclusion(tenants, types="serviceProvider"):
    return {"guestOrExternalUserTypes": types,
            "externalTenants": {"@odata.type": SP_EXCL_TYPE, "membershipKind": "enumerated", "members": tenants}}


vac = lambda: {"id": guid(), "displayName": "Vacation Exclusion - Jordan (2025-07)", "members": []}

customer("Fabrikam Dental", "fabrikamdental", [
    policy("Require MFA for all users"),
    policy("Block legacy authentication", grant=("block",), users={"includeUsers": ["All"], "excludeUsers": []}),
])
customer("Northwind Traders", "northwindtraders", [
    policy("Admins require MFA (report-only)", state="enabledForReportingButNotEnforced",
           users={"includeRoles": [GLOBAL_ADMIN, SEC_ADMIN, EXCHANGE_ADMIN]}),
])
g = {"id": guid(), "displayName": "Finance", "members": []}
customer("Tailspin Toys", "tailspintoys", [
    policy("Finance MFA (disabled)", state="disabled", users={"includeGroups": [g["id"]]}),
    policy("All users MFA", state="disabled"),
], groups=[g])
customer("Woodgrove Legal", "woodgrovelegal", [
    policy("Guests require MFA", users={"includeUsers": ["GuestsOrExternalUsers"]}),
    policy("External users terms", users={"includeGuestsOrExternalUsers": {
        "guestOrExternalUserTypes": "b2bCollaborationGuest,b2bCollaborationMember",
        "externalTenants": {"@odata.type": ALL_TENANTS_TYPE, "membershipKind": "all"}}}),
    policy("Require MFA for all users"),
])
customer("Adatum Clinics", "adatumclinics", [
    policy("MFA except internal guests", users={"includeUsers": ["All"], "excludeGuestsOrExternalUsers": {
        "guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest",
        "externalTenants": {"@odata.type": ALL_TENANTS_TYPE, "membershipKind": "all"}}}),
    policy("Block legacy authentication", grant=("block",), users={"includeUsers": ["All"]}),
])
OTHER_MSP = guid()
customer("Litware Engineering", "litwareeng", [
    policy("MFA for everyone but the old MSP", users={"includeUsers": ["All"],
                                                      "excludeGuestsOrExternalUsers": sp_exclusion([OTHER_MSP])}),
])
customer("Proseware Accounting", "prosewareacct", [
    policy("MFA all users (MSP already excluded)", users={"includeUsers": ["All"],
                                                         "excludeGuestsOrExternalUsers": sp_exclusion([MSP])}),
])
vg = vac()
customer("Alpine Ski House", "alpineskihouse", [
    policy("Block outside the UK", grant=("block",), users={"includeUsers": ["All"], "excludeGroups": [vg["id"]]},
           locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}),
], groups=[vg])
customer("Coho Winery", "cohowinery", [], securityDefaults=True)
customer("Margie's Travel", "margiestravel", [
    policy("MFA for all (unlicensed tenant)", state="disabled"),
], p1=False)
customer("Fourth Coffee", "fourthcoffee", [policy("Require MFA for all users")], roles=[HELPDESK, USER_ADMIN])
customer("Wingtip Toys", "wingtiptoys", [policy("Require MFA for all users")], consented=False)
customer("Contoso Pharmaceuticals", "contosopharma", [
    policy("Named users only", users={"includeUsers": [guid(), guid()]}),
])
customer("Lucerne Publishing", "lucernepub", [])
customer("Trey Research", "treyresearch", [
    policy("Block sign-ins from risky countries", grant=("block",),
           locations={"includeLocations": [guid()], "excludeLocations": []}),
    policy("Sign-in frequency for admins", users={"includeRoles": [GLOBAL_ADMIN]}, grant=("mfa",),
           session={"signInFrequency": {"value": 4, "type": "hours", "isEnabled": True,
                                        "authenticationType": "primaryAndSecondaryAuthentication",
                                        "frequencyInterval": "timeBased"}}),
])
customer("Blue Yonder Airlines", "blueyonder", [
    policy("MFA for all users, guests excluded by user list",
           users={"includeUsers": ["All"], "excludeUsers": ["GuestsOrExternalUsers"]}),
], roles=[GLOBAL_ADMIN])
customer("Humongous Insurance", "humongousins", [
    policy("Require MFA for all users", users={"includeUsers": ["All"],
                                              "excludeGuestsOrExternalUsers": sp_exclusion([OTHER_MSP, guid()], "internalGuest,serviceProvider")}),
    policy("Compliant device for all", grant=("compliantDevice", "mfa"), state="enabledForReportingButNotEnforced"),
])
customer("Relecloud", "relecloud", [
    policy("Require MFA for all users"),
    policy("Require MFA for admins", users={"includeRoles": [GLOBAL_ADMIN, CA_ADMIN]}),
    policy("Block legacy", grant=("block",)),
], roles=[SEC_ADMIN, HELPDESK])
customer("VanArsdel", "vanarsdel", [policy("Require MFA for all users", state="disabled")], roles=[CA_ADMIN])
customer("Graphic Design Institute", "graphicdesign", [policy("Require MFA for all users")],
         rel_status="terminated")
customer("School of Fine Art", "fineart", [
    policy("Require MFA for all users", customField="kept-by-graph"),
])
customer("Bellows College", "bellowscollege", [policy("Require MFA for all users")], permissionsDenied=True)
customer("Consolidated Messenger", "consolidatedmsg", [policy("Require MFA for all users")],
         rel_status="approvalPending")
# 130 policies (more than one page); most already exclude the MSP, six do not.
large = customer("Datum Corporation", "datumcorp", [
    policy(f"Legacy policy {i:03d}", state=["enabled", "disabled", "enabledForReportingButNotEnforced"][i % 3],
           users=dict([{"includeUsers": ["All"]}, {"includeRoles": [GLOBAL_ADMIN]}, {"includeGroups": [guid()]}][i % 4 % 3],
                      **({} if i % 25 == 0 else {"excludeGuestsOrExternalUsers": sp_exclusion([MSP])})))
    for i in range(130)
])

# Direct tenants (CIPP's "Add tenant", no GDAP): no relationship; CIPP keeps one refresh
# token per tenant, for the account it signed in with there, which reaches only that tenant.
direct_tokens = []


def direct_customer(name, domain, policies):
    account = user("CIPP direct account", f"cipp@{domain}.onmicrosoft.com")
    tid = guid()
    customers.append({"id": tid, "displayName": name, "defaultDomain": f"{domain}.onmicrosoft.com",
                      "securityDefaults": False, "p1": True, "consented": True,
                      "users": [user("Admin", f"admin@{domain}.onmicrosoft.com"), account],
                      "groups": [], "policies": list(policies), "namedLocations": []})
    direct_tokens.append({"token": f"sim-refresh-token-{domain}", "clientId": APP_ID, "userId": account["id"],
                          "userPrincipalName": account["userPrincipalName"], "tenantId": tid})


direct_customer("Munson's Pickles (direct)", "munsonspickles", [
    policy("Require MFA for all users"),
    policy("Block legacy authentication", grant=("block",), users={"includeUsers": ["All"]}),
])
direct_customer("Southridge Video (direct)", "southridgevideo", [
    policy("Require MFA for all users", users={"includeUsers": ["All"], "excludeUsers": []}),
])

estate = {
    "mspTenantId": MSP,
    "apps": [{"clientId": APP_ID, "clientSecret": APP_SECRET, "displayName": "CIPP-SAM"}],
    "refreshTokens": [{"token": "sim-refresh-token-cipp", "clientId": APP_ID, "userId": service["id"],
                       "userPrincipalName": service["userPrincipalName"]}] + direct_tokens,
    "relationships": relationships,
    "tenants": [msp] + customers,
}
print(json.dumps(estate, indent=1))
