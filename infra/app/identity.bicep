// The app's user-assigned managed identity. It is created first, on its own, so that every role
// it needs (rbac.bicep) is assigned before the Function App exists: the app's first start finds
// its roles in place instead of racing their assignment, as a system-assigned identity (born
// with the app) would. The Flex Consumption azd samples do the same. The app uses it for
// everything: host storage, the deployment package, Application Insights, Key Vault and, with
// dbAuth=entra, MySQL (infra/README.md).
param location string
param tags object = {}
param name string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
