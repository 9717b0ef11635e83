// caguard: an Azure Functions custom handler deployed next to CIPP.
//
// Hosting: Flex Consumption (FC1). It hosts custom handlers (runtime name
// "custom"), scales to zero, bills per execution, and runs the Linux image the
// glibc-2.28 binary targets. Premium (EP1) is only needed if the app must join a
// network Flex cannot reach; nothing in caguard needs it.
//
// Everything authenticates with one user-assigned managed identity: no storage
// keys, no secrets in app settings. caguard reads CIPP's Graph credentials from
// CIPP's own Key Vault at run time and re-reads them after CIPP's weekly rotation.

targetScope = 'resourceGroup'

@description('Azure region.')
param location string = resourceGroup().location

@description('Base name of the resources (letters and digits).')
@minLength(3)
@maxLength(16)
param baseName string = 'caguard'

@description('caguard.toml, inline (see caguard.example.toml).')
param caguardConfig string

@description('Name of CIPP\'s Key Vault (holds ApplicationID, ApplicationSecret, RefreshToken, TenantID).')
param cippKeyVaultName string

@description('Resource group of CIPP\'s Key Vault.')
param cippKeyVaultResourceGroup string = resourceGroup().name

@description('true when CIPP\'s vault uses Azure RBAC; false when it uses access policies (CIPP\'s default template).')
param cippKeyVaultUsesRbac bool = false

@description('CIPP\'s storage account (same resource group as the vault) for Part C; empty to skip it.')
param cippStorageAccountName string = ''

@description('CIPP\'s App Service (same resource group as its Key Vault); empty to skip C1\'s check of its authentication settings. Set [cipp] site_id in caguardConfig to match.')
param cippSiteName string = ''

@description('NCRONTAB schedule of the minute-level change check.')
param watchSchedule string = '0 */1 * * * *'

@description('NCRONTAB schedule of the Graph subscription renewal.')
param renewSchedule string = '0 0 */6 * * *'

@description('NCRONTAB schedule of Part C (CIPP-API access lists) on its own.')
param cippSchedule string = '0 5 * * * *'

@description('Graph grant: "app" (client credentials, app-only) or "delegated" (CIPP\'s refresh token).')
@allowed(['app', 'delegated'])
param authMode string = 'delegated'

@description('NCRONTAB schedule of the full reconcile.')
param sweepSchedule string = '0 */15 * * * *'

@description('Largest number of instances the app may scale out to.')
param maximumInstanceCount int = 40

@description('Memory per instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 512

@description('Teams Workflows webhook URL for alerts (a secret; empty for none). Kept here so a redeploy keeps it.')
@secure()
param teamsWebhookUrl string = ''

@description('Slack incoming-webhook URL for alerts (a secret; empty for none).')
@secure()
param slackWebhookUrl string = ''

@description('Generic JSON alert webhook URL (a secret; empty for none). Its schema is [alerts] webhook_schema.')
@secure()
param alertWebhookUrl string = ''

@description('Email addresses the Azure Monitor alert rules notify.')
param monitorEmails array = []

@description('Webhook URLs the Azure Monitor alert rules call (for example a paging service).')
param monitorWebhookUrls array = []

var token = toLower(uniqueString(subscription().id, resourceGroup().id, baseName))
var appName = '${baseName}-${token}'
var storageName = take('st${replace(baseName, '-', '')}${token}', 24)
var deploymentContainer = 'app-package'

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${appName}'
  location: location
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource reconcileQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'caguard-reconcile'
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'caguard-reconcile-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource statusTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'caguardStatus'
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${appName}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${appName}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}'
  location: location
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    // Key Vault references resolve with the user-assigned identity (the app has no system identity).
    keyVaultReferenceIdentity: identity.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // Identity-based connection for triggers, bindings and the host's own storage.
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        // caguard.
        { name: 'CAGUARD_CONFIG', value: caguardConfig }
        { name: 'CAGUARD_SWEEP_SCHEDULE', value: sweepSchedule }
        { name: 'CAGUARD_CIPP_SCHEDULE', value: cippSchedule }
        { name: 'CAGUARD_WATCH_SCHEDULE', value: watchSchedule }
        { name: 'CAGUARD_RENEW_SCHEDULE', value: renewSchedule }
        { name: 'CAGUARD_KEYVAULT_URL', value: 'https://${cippKeyVaultName}${environment().suffixes.keyvaultDns}/' }
        { name: 'CAGUARD_IDENTITY_CLIENT_ID', value: identity.properties.clientId }
        { name: 'CAGUARD_AUTH', value: authMode }
        // Alert channels: parameters, so a redeploy never drops them (empty means off).
        { name: 'CAGUARD_TEAMS_WEBHOOK_URL', value: teamsWebhookUrl }
        { name: 'CAGUARD_SLACK_WEBHOOK_URL', value: slackWebhookUrl }
        { name: 'CAGUARD_ALERT_WEBHOOK_URL', value: alertWebhookUrl }
      ]
    }
  }
  dependsOn: [storageRoles, packageContainer, reconcileQueue, poisonQueue, statusTable]
}

// Azure Monitor: what pages the on-call even when every chat channel is down.
resource monitorGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${appName}'
  location: 'Global'
  properties: {
    groupShortName: 'caguard'
    enabled: true
    emailReceivers: [for (address, i) in monitorEmails: { name: 'email-${i}', emailAddress: address, useCommonAlertSchema: true }]
    webhookReceivers: [for (uri, i) in monitorWebhookUrls: { name: 'webhook-${i}', serviceUri: uri, useCommonAlertSchema: true }]
  }
}

// Each rule: (name, description, severity, window, KQL, operator, threshold).
// caguard sends alerts as traces with custom dimensions (handler/src/telemetry.rs);
// WatchTimer's invocations are the host's own `requests` rows.
var monitorRules = [
  {
    name: 'alerts'
    description: 'caguard raised an alert (drift restored, enforcement that could not run, a pause …).'
    severity: 2
    window: 'PT5M'
    query: 'traces | where tostring(customDimensions.alert) == "true"'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'poison'
    description: 'A tenant reconcile failed every retry and went to the poison queue.'
    severity: 1
    window: 'PT5M'
    query: 'traces | where tostring(customDimensions.alert) == "true" and tostring(customDimensions.kind) == "poison-message"'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'undelivered'
    description: 'An alert did not reach a channel (kept and re-sent; see caguard status).'
    severity: 1
    window: 'PT5M'
    query: 'traces | where tostring(customDimensions.undelivered) == "true"'
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'watchdog'
    description: 'No successful WatchTimer run in 10 minutes: caguard is not watching.'
    severity: 0
    window: 'PT10M'
    query: 'requests | where name == "WatchTimer" and success == true'
    operator: 'LessThan'
    threshold: 1
  }
]

resource monitorAlerts 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = [
  for rule in monitorRules: {
    name: 'caguard-${rule.name}-${appName}'
    location: location
    properties: {
      displayName: 'caguard ${rule.name}'
      description: rule.description
      severity: rule.severity
      enabled: true
      evaluationFrequency: 'PT5M'
      windowSize: rule.window
      scopes: [insights.id]
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            operator: rule.operator
            threshold: rule.threshold
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      actions: { actionGroups: [monitorGroup.id] }
    }
  }
]

module cippAccess 'cipp-access.bicep' = {
  name: 'caguard-cipp-access'
  scope: resourceGroup(cippKeyVaultResourceGroup)
  params: {
    keyVaultName: cippKeyVaultName
    principalId: identity.properties.principalId
    useRbac: cippKeyVaultUsesRbac
    storageAccountName: cippStorageAccountName
    siteName: cippSiteName
  }
}

output functionAppName string = app.name
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output storageAccountName string = storage.name
