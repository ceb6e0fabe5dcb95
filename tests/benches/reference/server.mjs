// A plain broadcast server on Node's `ws`, the reference for Parallax's space broadcast.
// Clients send {"type":"hello"} first and get {"type":"welcome"}; a client that sends
// {"type":"select","model":…} has it sent to every client as an event with that client's own
// sequence number and the change number, like Parallax's space WebSocket. Acks are accepted and
// ignored. Prints "listening on PORT" once ready.
import { WebSocketServer } from 'ws';

const server = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
const clients = new Map();
let change = 0;

server.on('connection', (socket) => {
  socket.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      socket.close(1003, 'malformed message');
      return;
    }
    if (message.type === 'hello') {
      clients.set(socket, 0);
      socket.send(JSON.stringify({ type: 'welcome', seq: 0, change }));
    } else if (message.type === 'select') {
      change += 1;
      const event = JSON.stringify({ kind: 'selection', model: message.model });
      for (const [client, seq] of clients) {
        clients.set(client, seq + 1);
        client.send(`{"type":"event","seq":${seq + 1},"change":${change},"event":${event}}`);
      }
    }
  });
  socket.on('close', () => clients.delete(socket));
});

server.on('listening', () => console.log(`listening on ${server.address().port}`));
