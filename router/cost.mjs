// Demand control: the cost of an operation, before execution (requested) and from its result (actual).
//
// The rules are those of the IBM GraphQL cost specification / Apollo's demand control:
// - a field that returns an object (or a list of them) costs 1, a scalar or enum 0, a root mutation field 10;
//   `@cost(weight:)` on a field or its type overrides that;
// - a list field costs its size times (its weight plus the cost of its selection). The size is the value of
//   its slicing argument (`first`, `last`, `limit`, or those named by `@listSize(slicingArguments:)`), else
//   `@listSize(assumedSize:)`, else ROUTER_COST_DEFAULT_LIST_SIZE;
// - a connection (an object field with a slicing argument, e.g. `products(first: 20) { edges { node } }`)
//   hands its size to the list fields directly below it (`edges`, `nodes`).
// The walk follows fields, not names: an alias is one more field, introspection fields (`__schema`,
// `__type`) are costed like any other, and an operation named `__schema` is just an operation. Fragments are
// followed (each at most once per path; validation has rejected cycles before this runs).
import {
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  valueFromASTUntyped,
} from 'graphql';

const defaultSlicingArguments = ['first', 'last', 'limit'];
const mutationFieldWeight = 10;
const maxListSize = 1_000_000;

function directiveArgument(astNode, directive, argument) {
  const found = astNode?.directives?.find((d) => d.name.value === directive);
  const arg = found?.arguments?.find((a) => a.name.value === argument);
  return arg ? valueFromASTUntyped(arg.value) : undefined;
}

function fieldDefinition(parentType, name) {
  if (name === '__schema') return SchemaMetaFieldDef;
  if (name === '__type') return TypeMetaFieldDef;
  return parentType?.getFields?.()[name];
}

function listDepth(type) {
  let depth = 0;
  for (let t = getNullableType(type); isListType(t); t = getNullableType(t.ofType)) depth += 1;
  return depth;
}

const fieldWeights = new WeakMap();
const mutationRootWeights = new WeakMap();

class CostWalker {
  constructor(schema, document, operation, variables, defaultListSize) {
    this.schema = schema;
    this.fragments = new Map();
    for (const def of document.definitions) {
      if (def.kind === Kind.FRAGMENT_DEFINITION) this.fragments.set(def.name.value, def);
    }
    this.variables = { ...variables };
    for (const v of operation.variableDefinitions ?? []) {
      const name = v.variable.name.value;
      if (this.variables[name] === undefined && v.defaultValue) this.variables[name] = valueFromASTUntyped(v.defaultValue);
    }
    this.defaultListSize = defaultListSize;
  }

  // Memoised per field definition (schema objects; a new supergraph brings new ones): `actual` asks once per
  // value in the result, and reading the directives each time was a visible share of the router's CPU.
  weight(def, isMutationRoot) {
    const memo = isMutationRoot ? mutationRootWeights : fieldWeights;
    let weight = memo.get(def);
    if (weight === undefined) {
      weight = this.weightOf(def, isMutationRoot);
      memo.set(def, weight);
    }
    return weight;
  }

  weightOf(def, isMutationRoot) {
    const own = directiveArgument(def.astNode, 'cost', 'weight');
    if (own != null) return Number(own) || 0;
    const named = getNamedType(def.type);
    const typeWeight = directiveArgument(named.astNode, 'cost', 'weight');
    if (typeWeight != null) return Number(typeWeight) || 0;
    if (isMutationRoot) return mutationFieldWeight;
    return isCompositeType(named) ? 1 : 0;
  }

  // The size a slicing argument asks for, or undefined when the field has none.
  slice(node, def) {
    const names = directiveArgument(def.astNode, 'listSize', 'slicingArguments') ?? defaultSlicingArguments;
    for (const arg of node.arguments ?? []) {
      if (!names.includes(arg.name.value)) continue;
      const raw = valueFromASTUntyped(arg.value, this.variables);
      if (raw != null) return Math.min(maxListSize, Math.max(0, Math.trunc(Number(raw)) || 0));
    }
    for (const argDef of def.args ?? []) {
      if (names.includes(argDef.name) && argDef.defaultValue != null) {
        return Math.min(maxListSize, Math.max(0, Math.trunc(Number(argDef.defaultValue)) || 0));
      }
    }
    return undefined;
  }

  // Requested cost of a selection set; `handedSize`: the size a connection handed down to its list fields.
  requested(selectionSet, parentType, handedSize, seenFragments) {
    let total = 0;
    for (const sel of selectionSet.selections) {
      if (sel.kind === Kind.FIELD) {
        const def = fieldDefinition(parentType, sel.name.value);
        if (!def) continue; // __typename, or a field validation has already refused
        const isMutationRoot = parentType === this.schema.getMutationType();
        const weight = this.weight(def, isMutationRoot);
        const slice = this.slice(sel, def);
        const depth = listDepth(def.type);
        const childType = getNamedType(def.type);
        if (depth > 0) {
          const assumed = directiveArgument(def.astNode, 'listSize', 'assumedSize');
          const size = slice ?? handedSize ?? (assumed != null ? Number(assumed) : this.defaultListSize);
          const children = sel.selectionSet ? this.requested(sel.selectionSet, childType, undefined, seenFragments) : 0;
          total += size ** depth * (weight + children);
        } else {
          const children = sel.selectionSet ? this.requested(sel.selectionSet, childType, slice, seenFragments) : 0;
          total += weight + children;
        }
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const type = sel.typeCondition ? this.schema.getType(sel.typeCondition.name.value) : parentType;
        total += this.requested(sel.selectionSet, type, handedSize, seenFragments);
      } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const name = sel.name.value;
        const fragment = this.fragments.get(name);
        if (!fragment || seenFragments.has(name)) continue;
        const type = this.schema.getType(fragment.typeCondition.name.value);
        total += this.requested(fragment.selectionSet, type, handedSize, new Set([...seenFragments, name]));
      }
    }
    return total;
  }

  // Actual cost: the same weights over what the result holds (real list lengths, nulls cost nothing).
  actual(selectionSet, parentType, data, seenFragments) {
    if (data == null || typeof data !== 'object') return 0;
    let total = 0;
    for (const sel of selectionSet.selections) {
      if (sel.kind === Kind.FIELD) {
        const def = fieldDefinition(parentType, sel.name.value);
        if (!def) continue;
        const value = data[sel.alias?.value ?? sel.name.value];
        if (value == null) continue;
        const weight = this.weight(def, parentType === this.schema.getMutationType());
        const childType = getNamedType(def.type);
        const each = (item) => {
          if (item == null) return 0;
          if (Array.isArray(item)) return item.reduce((sum, i) => sum + each(i), 0);
          return weight + (sel.selectionSet ? this.actual(sel.selectionSet, childType, item, seenFragments) : 0);
        };
        total += each(value);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        const type = sel.typeCondition ? this.schema.getType(sel.typeCondition.name.value) : parentType;
        total += this.actual(sel.selectionSet, type, data, seenFragments);
      } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const name = sel.name.value;
        const fragment = this.fragments.get(name);
        if (!fragment || seenFragments.has(name)) continue;
        const type = this.schema.getType(fragment.typeCondition.name.value);
        total += this.actual(fragment.selectionSet, type, data, new Set([...seenFragments, name]));
      }
    }
    return total;
  }
}

export function selectOperation(document, operationName) {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (operationName) return operations.find((op) => op.name?.value === operationName) ?? null;
  return operations.length === 1 ? operations[0] : null;
}

function rootType(schema, operation) {
  if (operation.operation === 'mutation') return schema.getMutationType();
  if (operation.operation === 'subscription') return schema.getSubscriptionType();
  return schema.getQueryType();
}

// Returns { requested, actualOf(data) } for the operation `operationName` of `document`, or null when the
// document names no single operation (graphql-js reports that itself).
export function operationCost(schema, document, operationName, variables, { defaultListSize }) {
  const operation = selectOperation(document, operationName);
  if (!operation) return null;
  const walker = new CostWalker(schema, document, operation, variables ?? {}, defaultListSize);
  const root = rootType(schema, operation);
  return {
    requested: Math.round(walker.requested(operation.selectionSet, root, undefined, new Set())),
    actualOf: (data) => Math.round(walker.actual(operation.selectionSet, root, data, new Set())),
  };
}
