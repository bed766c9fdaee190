// Log Analytics workspace + workspace-based Application Insights. Local (instrumentation key)
// authentication is off: the app sends telemetry with its user-assigned managed identity
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=<its client id>;Authorization=AAD, role
// Monitoring Metrics Publisher).
param location string
param tags object = {}
param logAnalyticsName string
param applicationInsightsName string

@description('Days Log Analytics keeps the logs (30 is included in the ingestion price).')
param retentionInDays int = 30

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

output applicationInsightsName string = applicationInsights.name
output logAnalyticsName string = logAnalytics.name
