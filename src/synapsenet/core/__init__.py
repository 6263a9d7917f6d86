"""Platform pieces every service uses: database, events, storage, client, auth."""
