// Read access for caguard's identity to CIPP's Key Vault: get and list secrets, nothing else.

@description('CIPP\'s Key Vault, in this resource group.')
param keyVaultName string

@description('Principal id of caguard\'s managed identity.')
param principalId string

@description('The vault uses Azure RBAC (true) or access policies (false).')
param useRbac bool

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
