// The least of a TURN client (RFC 8656 over UDP, long-term credentials): an allocation, then
// permissions for peer addresses, for turn-scenario.mjs to ask coturn for relays it must refuse.
// Browsers ask only for the addresses in the server's offer, so only a client of the test's own
// can ask for others.

import { createHash, createHmac, randomBytes } from "node:crypto";
import dgram from "node:dgram";

const COOKIE = 0x2112a442;
const ALLOCATE = 0x0003;
const CREATE_PERMISSION = 0x0008;
const ATTR = { USERNAME: 0x0006, MESSAGE_INTEGRITY: 0x0008, ERROR_CODE: 0x0009, XOR_PEER_ADDRESS: 0x0012, REALM: 0x0014, NONCE: 0x0015, REQUESTED_TRANSPORT: 0x0019 };
/** How long one request waits for its answer (UDP: it is sent again meanwhile). */
const ANSWER_MS = 5000;

/**
 * @param {number} type
 * @param {Buffer} value
 */
function attribute(type, value) {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

/**
 * A STUN request; with `key`, signed by a MESSAGE-INTEGRITY over everything before it (the
 * header's length already counting it).
 * @param {number} method
 * @param {Buffer[]} attributes
 * @param {Buffer | null} key
 */
function request(method, attributes, key) {
  const body = Buffer.concat(attributes);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(method, 0);
  head.writeUInt16BE(body.length + (key ? 24 : 0), 2);
  head.writeUInt32BE(COOKIE, 4);
  randomBytes(12).copy(head, 8);
  const message = Buffer.concat([head, body]);
  if (!key) return message;
  return Buffer.concat([message, attribute(ATTR.MESSAGE_INTEGRITY, createHmac("sha1", key).update(message).digest())]);
}

/**
 * An answer's class (0 request, 2 success, 3 error), its error code and its attributes.
 * @param {Buffer} msg
 */
function parse(msg) {
  const type = msg.readUInt16BE(0);
  /** @type {Map<number, Buffer>} */
  const attrs = new Map();
  for (let at = 20; at + 4 <= msg.length; ) {
    const t = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    attrs.set(t, msg.subarray(at + 4, at + 4 + len));
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  const cls = ((type >> 4) & 1) | ((type >> 7) & 2);
  const error = attrs.get(ATTR.ERROR_CODE);
  return { cls, code: error ? error[2] * 100 + error[3] : 0, attrs, id: msg.subarray(8, 20).toString("hex") };
}

/**
 * XOR-PEER-ADDRESS for an IPv4 address (the port does not matter to a permission).
 * @param {string} ip
 */
function peer(ip) {
  const value = Buffer.alloc(8);
  value.writeUInt16BE(0x0001, 0);
  value.writeUInt16BE(9 ^ (COOKIE >>> 16), 2);
  const n = ip.split(".").reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  value.writeUInt32BE((n ^ COOKIE) >>> 0, 4);
  return attribute(ATTR.XOR_PEER_ADDRESS, value);
}

/**
 * Allocates a relay on the TURN server at `host`:`port` with `username` and `password`, and
 * asks for a permission for each of `peers`.
 * @param {{host: string, port: number, username: string, password: string, peers: string[]}} opts
 * @returns {Promise<Record<string, number>>} per peer address: 200, or the error code
 */
export async function permissionAnswers(opts) {
  const socket = dgram.createSocket("udp4");
  /** @type {Map<string, (msg: ReturnType<typeof parse>) => void>} */
  const waiting = new Map();
  socket.on("message", (msg) => {
    if (msg.length < 20) return;
    const answer = parse(msg);
    waiting.get(answer.id)?.(answer);
  });
  /** @param {Buffer} message */
  const ask = (message) =>
    /** @type {Promise<ReturnType<typeof parse>>} */ (
      new Promise((resolve, reject) => {
        const id = message.subarray(8, 20).toString("hex");
        const resend = setInterval(() => socket.send(message, opts.port, opts.host), 500);
        const timer = setTimeout(() => {
          clearInterval(resend);
          waiting.delete(id);
          reject(new Error(`no answer from ${opts.host}:${opts.port}`));
        }, ANSWER_MS);
        waiting.set(id, (answer) => {
          clearInterval(resend);
          clearTimeout(timer);
          waiting.delete(id);
          resolve(answer);
        });
        socket.send(message, opts.port, opts.host);
      })
    );
  try {
    const udp = attribute(ATTR.REQUESTED_TRANSPORT, Buffer.from([17, 0, 0, 0]));
    const challenge = await ask(request(ALLOCATE, [udp], null));
    if (challenge.code !== 401) throw new Error(`an unsigned ALLOCATE was answered ${challenge.cls}/${challenge.code}, not 401`);
    const realm = challenge.attrs.get(ATTR.REALM) ?? Buffer.alloc(0);
    const nonce = challenge.attrs.get(ATTR.NONCE) ?? Buffer.alloc(0);
    const key = createHash("md5").update(`${opts.username}:${realm.toString("utf8")}:${opts.password}`).digest();
    const signed = [attribute(ATTR.USERNAME, Buffer.from(opts.username)), attribute(ATTR.REALM, realm), attribute(ATTR.NONCE, nonce)];
    const allocated = await ask(request(ALLOCATE, [udp, ...signed], key));
    if (allocated.cls !== 2) throw new Error(`ALLOCATE refused: ${allocated.code}`);
    /** @type {Record<string, number>} */
    const answers = {};
    for (const ip of opts.peers) {
      const answer = await ask(request(CREATE_PERMISSION, [peer(ip), ...signed], key));
      answers[ip] = answer.cls === 2 ? 200 : answer.code;
    }
    return answers;
  } finally {
    socket.close();
  }
}
