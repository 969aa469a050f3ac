"""viewer: folium/Leaflet maps for joint review meetings, working offline."""
