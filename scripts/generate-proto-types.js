// Writes the TypeScript types of CRIU's messages from proto/*.proto, so they cannot drift from the schema the codec
// encodes with: `npm run -s generate:proto` after changing a .proto; `--check` only reports stale files (exit 1), as
// test/criu/codec.test.ts does. The output is checked in, not made by `npm run build`: the Docker build compiles
// src/ without proto/ and scripts/.
// The types follow the codec's conventions (src/criu/codec.ts): CRIU's snake_case field names, enums as their names,
// 64-bit integers as numbers, required fields required and the rest optional.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** Each schema and the file its types go to. */
const OUTPUTS = [
  { proto: 'proto/rpc.proto', out: 'src/criu/rpc-messages.ts' },
  { proto: 'proto/stats.proto', out: 'src/criu/stats-messages.ts' },
];

const SCALARS = {
  bool: 'boolean',
  string: 'string',
  bytes: 'Uint8Array',
  double: 'number',
  float: 'number',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  fixed32: 'number',
  sfixed32: 'number',
  int64: 'number',
  uint64: 'number',
  sint64: 'number',
  fixed64: 'number',
  sfixed64: 'number',
};

/** criu_req_type -> CriuReqType */
function typeName(protoName) {
  return protoName.replace(/(^|_)([a-z0-9])/g, (_, __, c) => c.toUpperCase());
}

function docComment(comment, indent) {
  return comment ? `${indent}/** ${comment.replace(/\s*\n\s*/g, ' ')} */\n` : '';
}

function fieldType(field) {
  const scalar = SCALARS[field.type];
  if (scalar) return scalar;
  if (!field.resolvedType) throw new Error(`${field.fullName}: unknown type ${field.type}`);
  return typeName(field.resolvedType.name);
}

function generate(protoFile) {
  const { root: schema } = protobuf.parse(readFileSync(path.join(root, protoFile), 'utf8'), { keepCase: true, alternateCommentMode: true });
  schema.resolveAll();
  const parts = [
    `// Generated from ${protoFile} by scripts/generate-proto-types.js: do not edit, run \`npm run -s generate:proto\`.\n` +
      '// CRIU\'s snake_case names; enums travel as their names, 64-bit integers as numbers (src/criu/codec.ts).\n',
  ];
  for (const item of schema.nestedArray) {
    if (item.nestedArray?.length) throw new Error(`${item.fullName}: nested types are not supported`);
    const name = typeName(item.name);
    if (item instanceof protobuf.Enum) {
      const values = Object.entries(item.values).map(([key, n]) => `  ${key}: ${n},\n`);
      parts.push(
        `${docComment(item.comment, '')}export const ${name} = {\n${values.join('')}} as const;\n` +
          `export type ${name} = keyof typeof ${name};\n`,
      );
    } else if (item instanceof protobuf.Type) {
      const fields = item.fieldsArray.map((f) => {
        const type = f.repeated ? `${fieldType(f)}[]` : fieldType(f);
        return `${docComment(f.comment, '  ')}  ${f.name}${f.required ? '' : '?'}: ${type};\n`;
      });
      parts.push(`${docComment(item.comment, '')}export interface ${name} {\n${fields.join('')}}\n`);
    } else {
      throw new Error(`${item.fullName}: only messages and enums are supported`);
    }
  }
  return parts.join('\n');
}

const check = process.argv.includes('--check');
const stale = [];
for (const { proto, out } of OUTPUTS) {
  const text = generate(proto);
  const file = path.join(root, out);
  let current = null;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // Not generated yet.
  }
  if (current === text) continue;
  if (check) stale.push(`${out} is not what ${proto} generates: run npm run -s generate:proto`);
  else writeFileSync(file, text);
}
if (stale.length) {
  console.error(stale.join('\n'));
  process.exit(1);
}
