/*
 * The TCP socket under a replication connection, with its reads landing in one reused buffer
 * (net.Socket's `onread`). By default Node allocates a fresh 64 KiB buffer for every read; at a
 * base backup's rate that is ~11,000 allocations and 26,000 page faults per 337 MB, and it was
 * half of the client's CPU while receiving (docs/BENCHMARKS.md, "Replication library").
 *
 * Two kinds of reader share the socket:
 * - a raw reader (the command framer during BASE_BACKUP) gets each read as a view of the reused
 *   buffer, valid only during the call: it must copy what it keeps;
 * - otherwise the bytes are copied and emitted as 'data' for pg-protocol, which keeps a partial
 *   message by reference and so must own what it is given.
 * pause()/resume() stop and restart reading as on any socket (Node does it through the handle).
 * TLS connections do not use it: pg wraps the socket in a TLSSocket that reads on its own.
 */
import { Socket } from 'node:net';

/** Size of the reused read buffer: one read(2) takes at most this much. */
export const READ_BUFFER_SIZE = 256 * 1024;

const RAW_READER = Symbol('pg-replication.rawReader');

/** Gets each read as a view of the reused buffer, valid during the call only. */
export type RawReader = (view: Buffer) => void;

interface ReusedBufferSocket extends Socket {
  [RAW_READER]: RawReader | null;
}

/** A socket for pg's `stream` option (see toClientConfig). */
export function createReusedBufferSocket(): Socket {
  const buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  // `onread` is honoured by the constructor too (net.connect passes its options there), though
  // @types/node only declares it on connect().
  const socket = new Socket({
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array): void => {
        const view = Buffer.from(buf.buffer, buf.byteOffset, n);
        const raw = socket[RAW_READER];
        if (raw) raw(view);
        else socket.emit('data', Buffer.from(view));
      },
    },
  } as ConstructorParameters<typeof Socket>[0]) as ReusedBufferSocket;
  socket[RAW_READER] = null;
  return socket;
}

/**
 * Routes the reads of `socket` to `reader` (null: back to 'data' events). Returns false, and
 * changes nothing, when the socket is not one made by createReusedBufferSocket (a TLS socket).
 */
export function setRawReader(socket: unknown, reader: RawReader | null): boolean {
  if (typeof socket !== 'object' || socket === null || !(RAW_READER in socket)) return false;
  (socket as ReusedBufferSocket)[RAW_READER] = reader;
  return true;
}
