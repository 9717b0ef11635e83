using 'main.bicep'

param baseName = 'caguard'
param cippKeyVaultName = 'cippab12c'
param cippKeyVaultResourceGroup = 'rg-cipp'
param cippKeyVaultUsesRbac = false
param cippStorageAccountName = 'cippab12c'
param authMode = 'delegated'
param sweepSchedule = '0 */15 * * * *'
param caguardConfig = loadTextContent('../caguard.toml')
