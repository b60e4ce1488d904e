"""The hub's directory of agents: every agent it knows (online or not), which are online over
which peer, and who provides which function."""

from __future__ import annotations

from arkitekt.protocol.rekuest import Definition
from arkitekt_server.rekuest._peer import Peer
from arkitekt_server.rekuest._state import AgentState

__all__ = ["Agents"]


class Agents:
    """Agents by key, indexed by their peer and by the functions they provide while online."""

    def __init__(self) -> None:
        self.by_key: dict[str, AgentState] = {}
        self._providers: dict[str, dict[str, AgentState]] = {}  # function -> key -> agent
        self._by_peer: dict[Peer, AgentState] = {}
        self._elsewhere: dict[str, dict[str, AgentState]] = {}  # function -> key -> agent

    def elsewhere(self, agents: dict[str, AgentState]) -> None:
        """Take the agents as stored (PostgreSQL: by every replica), those online on other
        replicas with their ``replica`` set; agents connected here are kept as they are."""
        self._elsewhere = {}
        for key, stored in agents.items():
            agent = self.by_key.get(key)
            if agent is not None and agent.peer is not None:
                continue
            if agent is None:
                agent = self.by_key[key] = stored
            else:
                agent.set_definitions(list(stored.definitions.values()))
                agent.replica = stored.replica
            if agent.replica is not None:
                for function in agent.definitions:
                    self._elsewhere.setdefault(function, {})[key] = agent

    def providing_elsewhere(self, function: str, selector: str | None) -> list[AgentState]:
        """The agents matching ``selector`` online on other replicas that provide ``function``."""
        providers = self._elsewhere.get(function)
        if not providers:
            return []
        return [agent for agent in providers.values() if agent.matches(selector)]

    def add(self, agents: dict[str, AgentState]) -> None:
        """Know ``agents`` (offline, e.g. restored at startup)."""
        self.by_key.update(agents)

    def get(self, key: str, client_pk: int, name: str, instance: str) -> AgentState:
        """The agent ``key``, known from now on if it was not."""
        agent = self.by_key.get(key)
        if agent is None:
            agent = self.by_key[key] = AgentState(key, client_pk, name, instance)
        return agent

    def online(self, agent: AgentState, peer: Peer) -> None:
        """``agent`` is online over ``peer`` (its definitions set already)."""
        agent.peer = peer
        agent.replica = None
        self._by_peer[peer] = agent
        for function in agent.definitions:
            self._providers.setdefault(function, {})[agent.key] = agent

    def offline(self, agent: AgentState) -> None:
        """``agent`` is offline (its peer closed)."""
        if agent.peer is not None:
            self._by_peer.pop(agent.peer, None)
        agent.peer = None
        for function in agent.definitions:
            self._providers.get(function, {}).pop(agent.key, None)

    def of(self, peer: Peer) -> AgentState | None:
        """The agent online over ``peer`` (``None``: it never registered, or is gone)."""
        return self._by_peer.get(peer)

    def providing(self, function: str, selector: str | None) -> list[AgentState]:
        """The online agents matching ``selector`` that provide ``function``."""
        providers = self._providers.get(function)
        if not providers:
            return []
        return [agent for agent in providers.values() if agent.matches(selector)]

    def local_selectors(self) -> dict[str, set[str]]:
        """The functions agents online here provide, each with those agents' names and keys
        (what a call's agent filter may name)."""
        return {
            function: {name for agent in agents.values() for name in (agent.name, agent.key)}
            for function, agents in self._providers.items()
            if agents
        }

    def definitions(self, function: str, selector: str | None) -> list[Definition]:
        """The definitions of ``function`` of every agent (online or not) matching ``selector``."""
        return [
            agent.definitions[function]
            for agent in self.by_key.values()
            if agent.matches(selector) and function in agent.definitions
        ]
