"""Every side effect of the product: store lookups, checks, grant and revoke,
audit and notifications. Activities never import workflows; workflows reach them
only through `activities.interfaces`, which is why this package's root imports
nothing."""
