// caguard's access to CIPP's resources: read CIPP's Key Vault secrets (get, list)
// and, for Part C, read and update rows in CIPP's tables (ApiClients, AccessIPRanges).

@description('CIPP\'s Key Vault, in this resource group.')
param keyVaultName string

@description('Principal id of caguard\'s managed identity.')
param principalId string

@description('The vault uses Azure RBAC (true) or access policies (false).')
param useRbac bool

@description('CIPP\'s storage account, in this resource group; empty to skip Part C.')
param storageAccountName string = ''

@description('CIPP\'s App Service, in this resource group; empty to skip C1\'s check of its authentication settings.')
param siteName string = ''

// Storage Table Data Contributor: read and update table rows.
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

// Key Vault Secrets User: read secret contents.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useRbac) {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource accessPolicy 'Microsoft.KeyVault/vaults/accessPolicies@2023-07-01' = if (!useRbac) {
  parent: vault
  name: 'add'
  properties: {
    accessPolicies: [
      {
        tenantId: subscription().tenantId
        objectId: principalId
        permissions: { secrets: ['get', 'list'] }
      }
    ]
  }
}

resource cippStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!empty(storageAccountName)) {
  name: empty(storageAccountName) ? 'unused' : storageAccountName
}

resource tableAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(storageAccountName)) {
  name: guid(cippStorage.id, principalId, tableDataContributor)
  scope: cippStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
  }
}

resource cippSite 'Microsoft.Web/sites@2023-12-01' existing = if (!empty(siteName)) {
  name: empty(siteName) ? 'unused' : siteName
}

// Read the site's authentication settings (POST config/authsettingsV2/list), nothing else.
resource authSettingsReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(siteName)) {
  name: guid(resourceGroup().id, 'caguard-cipp-auth-settings-reader')
  properties: {
    roleName: 'caguard CIPP auth settings reader (${resourceGroup().name})'
    description: 'Lets caguard read which API clients CIPP\'s App Service authentication admits.'
    type: 'CustomRole'
    permissions: [ { actions: [ 'Microsoft.Web/sites/config/list/Action' ], notActions: [] } ]
    assignableScopes: [ resourceGroup().id ]
  }
}

resource siteAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(siteName)) {
  name: guid(cippSite.id, principalId, 'caguard-cipp-auth-settings-reader')
  scope: cippSite
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: authSettingsReader.id
  }
}
