"""The search attributes of SPEC section 3: a `GroupActivation` keeps them
current on every state change, so that `pim requests` and `temporal workflow
list --query "PimState='pending_approval'"` find requests by state, group,
access and principal. Workflow-safe: the client, `pim dev` and the tests use
these keys too."""

from temporalio.common import SearchAttributeKey

PIM_STATE = SearchAttributeKey.for_keyword("PimState")
PIM_GROUP_ID = SearchAttributeKey.for_keyword("PimGroupId")
PIM_ACCESS = SearchAttributeKey.for_keyword("PimAccess")
PIM_PRINCIPAL_ID = SearchAttributeKey.for_keyword("PimPrincipalId")
SEARCH_ATTRIBUTES = (PIM_STATE, PIM_GROUP_ID, PIM_ACCESS, PIM_PRINCIPAL_ID)
SEARCH_ATTRIBUTE_NAMES = tuple(key.name for key in SEARCH_ATTRIBUTES)
